"""Driver killed mid-search (SIGKILL, with its local Ray) -> `pairtune resume RUN` finishes the same
experiment: finished trials are not rerun, the interrupted one continues from its checkpoint."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
from conftest import assert_continues_from_last_checkpoint
from runfiles import read_leaderboard

pytestmark = pytest.mark.slow

NUM_SAMPLES = 3
EPOCHS = 2


def results(trial_dir):
    path = trial_dir / "result.json"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for_kill_point(run, proc, timeout=300):
    """Until one trial has finished and another has a resumable checkpoint."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the search ended before it could be interrupted"
        trials = [p for p in run.glob("*") if (p / "params.json").exists()] if run.exists() else []
        finished = [t for t in trials if any(r.get("final") for r in results(t))]
        # Running with a reported result (its checkpoint registered), none newer than a moment ago:
        # Ray saves its experiment state right after, so resume knows that checkpoint as the latest.
        running = [t for t in trials if t not in finished and results(t) and list(t.glob("checkpoint_*/resume.ckpt"))
                   and time.time() - (t / "result.json").stat().st_mtime > 0.2]
        if finished and running:
            return finished, running
        time.sleep(0.3)
    raise AssertionError("no kill point reached")


def test_sigkill_then_resume(tmp_path, tiny_backbone, ruddit_pairs):
    config = {
        "data": {"pairs": str(ruddit_pairs), "max_votes": 900, "max_length": 64},
        "model": {"backbone": tiny_backbone},
        "train": {"epochs": EPOCHS, "batch_size": 32, "val_every_n_steps": 5},
        "search": {"name": "r", "storage_path": str(tmp_path / "runs"), "num_samples": NUM_SAMPLES,
                   "max_concurrent_trials": 1, "scheduler": "fifo",
                   "space": {"train.lr": {"loguniform": [1e-4, 1e-2]}}},
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    run = tmp_path / "runs" / "r"
    proc = subprocess.Popen([sys.executable, "-m", "search.cli", "search", str(path)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        finished, running = wait_for_kill_point(run, proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the local Ray it started
        proc.wait()
    before = {t.name: results(t) for t in finished + running}
    time.sleep(2)

    out = subprocess.run([sys.executable, "-m", "search.cli", "resume", str(run)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]

    board = read_leaderboard(run / "export" / "leaderboard.csv")
    assert len(board) == NUM_SAMPLES and set(board.outcome) == {"finished"}
    for t in finished:  # not rerun: its results are exactly what they were
        assert results(t) == before[t.name]
    schedule = [r["step"] for r in before[finished[0].name]]  # every trial validates at the same steps
    for t in running:  # continued from its latest checkpoint, not from step 0 or an older one
        after = results(t)[len(before[t.name]):]
        assert_continues_from_last_checkpoint(before[t.name], after, schedule)
        assert after[-1]["final"] and after[-1]["epoch"] == EPOCHS
    # The Optuna study in the run was reopened, not restarted: every trial in it, none left RUNNING (a trial
    # the killed driver had started after its last saved state is FAIL, "lost"; Tune ran another instead).
    import optuna
    from optuna.trial import TrialState

    from search.runs import study

    loaded = optuna.load_study(study_name="r", storage=study.journal_storage(run / study.STUDY_FILE))
    kept = [t for t in loaded.get_trials() if t.user_attrs.get(study.OUTCOME) != "lost"]
    assert all(t.state == TrialState.FAIL for t in loaded.get_trials() if t not in kept)
    assert sorted(t.user_attrs[study.TUNE_TRIAL_ID] for t in kept) == sorted(board.trial_id)
    assert {t.state for t in kept} == {TrialState.COMPLETE}
    for t in run.glob("*/params.json"):  # finished trials keep one checkpoint, without resume state
        checkpoints = list(t.parent.glob("checkpoint_*"))
        assert len(checkpoints) == 1 and not (checkpoints[0] / "resume.ckpt").exists()
