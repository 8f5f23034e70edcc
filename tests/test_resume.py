"""An interrupted search resumes where it stopped, however it was stopped. One real tiny search, stopped
three times and resumed each time, as users and schedulers stop searches:

- Ctrl-C (SIGINT), then SIGTERM (`ray job stop`, schedulers): a graceful stop that says so (exit 130 /
  143, never 0, "interrupted" and the command that resumes it), the experiment state saved and the
  run resumable (issue 20, items 6 and 7);
- SIGKILL of the driver with its local Ray: `pairtune resume RUN` finishes the same experiment, finished
  trials not rerun, the interrupted one continued from its checkpoint, the Optuna study reopened.
"""

import json
import os
import shlex
import signal
import subprocess
import sys
import time

import pytest
import yaml
from conftest import assert_continues_from_last_checkpoint
from runfiles import read_leaderboard

pytestmark = pytest.mark.slow

NUM_SAMPLES = 2  # one finishes and one is running when the driver is killed
EPOCHS = 2


def results(trial_dir):
    path = trial_dir / "result.json"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def result_lines(run):
    return sum(len(p.read_text().splitlines()) for p in run.glob("*/result.json")) if run.exists() else 0


def start(*args, output=subprocess.PIPE):
    """`pairtune ARGS` in a new session (so that its local Ray can be killed with it), its output merged
    into stdout (read only at its end: for a short run; a long one would fill the pipe and block)."""
    return subprocess.Popen([sys.executable, "-m", "search.cli", *args], start_new_session=True, text=True,
                            stdout=output, stderr=subprocess.STDOUT)


def kill_all(proc):
    """Whatever is left of the process and its local Ray."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def interrupt_after_a_result(args, run, sig, timeout=300):
    """Start `pairtune ARGS`, wait until a trial reports a new result, send `sig` to the driver;
    the finished process's exit code and output."""
    before = result_lines(run)
    proc = start(*args)
    try:
        deadline = time.monotonic() + timeout
        while result_lines(run) <= before:
            assert proc.poll() is None, "ended before it could be interrupted:\n" + proc.stdout.read()[-3000:]
            assert time.monotonic() < deadline, "no result reported"
            time.sleep(0.3)
        os.kill(proc.pid, sig)  # the driver only, as `kill` or `ray job stop` does
        out, _ = proc.communicate(timeout=180)
    finally:
        kill_all(proc)
    return proc.returncode, out


def saved_state_latest(run) -> dict[str, str]:
    """Each trial's latest checkpoint directory (name) in the experiment state Ray saved last: the one
    of its last result (Ray registers a result's checkpoint and records the result in one step). The
    state of this session is the file named last (its start time): Ray rewrites the earlier sessions'
    files too, so their modification times say nothing."""
    states = sorted(run.glob("experiment_state-*.json"))
    try:
        trials = json.loads(states[-1].read_text())["trial_data"] if states else []
    except (OSError, ValueError):  # being replaced
        return {}
    latest = {}
    for trial, metadata in trials:
        name = (json.loads(metadata).get("last_result") or {}).get("checkpoint_dir_name")
        if name:
            latest[json.loads(trial)["trial_id"]] = name
    return latest


def wait_for_kill_point(run, proc, timeout=300):
    """Until one trial has finished and another is running with a resumable checkpoint that the saved
    experiment state names as its latest: resume knows where it was. (The trial may have written newer
    checkpoints that the driver has not registered yet: resume continues from the named one and runs
    those validations again. Killed in the moment between Ray registering a newer checkpoint, which
    deletes the named one, and saving its state, the trial would continue from its best checkpoint
    instead: tests/test_tuner.py checks that case.)"""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the search ended before it could be interrupted"
        trials = [p for p in run.glob("*") if (p / "params.json").exists()] if run.exists() else []
        finished = [t for t in trials if any(r.get("final") for r in results(t))]
        latest = saved_state_latest(run)
        running = [t for t in trials if t not in finished and t.name in latest and (t / latest[t.name] / "resume.ckpt").exists()]
        if finished and running:
            return finished, running
        time.sleep(0.1)
    raise AssertionError("no kill point reached")


def test_sigint_sigterm_and_sigkill_then_resume(tmp_path, tiny_backbone, ruddit_pairs, run_cli):
    from ray import tune

    config = {
        "data": {"pairs": str(ruddit_pairs), "max_votes": 900, "max_length": 32},
        "model": {"backbone": tiny_backbone},
        "train": {"epochs": EPOCHS, "batch_size": 32, "val_every_n_steps": 5},
        "search": {"name": "r", "storage_path": str(tmp_path / "my runs"), "num_samples": NUM_SAMPLES,
                   "max_concurrent_trials": 1, "scheduler": "fifo", "baseline": False,
                   "space": {"train.lr": {"loguniform": [1e-4, 1e-2]}}},
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    run = tmp_path / "my runs" / "r"
    resume = f"pairtune resume {shlex.quote(str(run))}"  # the path has a space: quoted

    # Ctrl-C: a graceful stop.
    code, out = interrupt_after_a_result(["search", str(path)], run, signal.SIGINT)
    assert code == 130, out[-4000:]
    assert "interrupted" in out and resume in out, out[-4000:]
    assert "search finished" not in out and "no trial has reported" not in out, out[-4000:]
    assert tune.Tuner.can_restore(str(run))
    exported = run_cli("export", str(run))  # the results so far: the trial that reported is there
    assert exported.returncode == 0 and "interrupted" in exported.stdout, exported.stdout + exported.stderr

    # SIGTERM of the resumed search: a graceful stop too.
    reported = result_lines(run)
    code, out = interrupt_after_a_result(["resume", str(run)], run, signal.SIGTERM)
    assert code == 143, out[-4000:]
    assert "interrupted" in out and resume in out, out[-4000:]
    assert "*** SIGTERM received" not in out, out[-4000:]  # Ray's C++ handler's dump before it aborted (exit 134)
    assert result_lines(run) > reported  # the resume did continue the search
    assert tune.Tuner.can_restore(str(run))

    # SIGKILL of the driver and its local Ray while one trial has finished and another runs: nothing saved on the way out.
    proc = start("resume", str(run), output=subprocess.DEVNULL)
    try:
        finished, running = wait_for_kill_point(run, proc)
    finally:
        kill_all(proc)
    before = {t.name: results(t) for t in finished + running}
    time.sleep(2)

    out = subprocess.run([sys.executable, "-m", "search.cli", "resume", str(run)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]

    board = read_leaderboard(run / "export" / "leaderboard.csv")
    assert len(board) == NUM_SAMPLES and set(board.outcome) == {"finished"}
    for t in finished:  # not rerun: its results are exactly what they were
        assert results(t) == before[t.name]
    # every trial validates at the same steps (the finished one may have repeated one after a graceful stop)
    schedule = sorted({r["step"] for r in before[finished[0].name]})
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
