"""Ctrl-C (SIGINT) and SIGTERM (`ray job stop`, schedulers) stop a search gracefully and say so: exit
130 / 143, never 0, "interrupted" and the command that resumes it, the experiment state saved, and
the run resumable (issue 20, items 6 and 7). One real tiny search, interrupted twice: the search by
SIGINT, then its resume by SIGTERM."""

import os
import shlex
import signal
import subprocess
import sys
import time

import pytest
import yaml

pytestmark = pytest.mark.slow


def result_lines(run):
    return sum(len(p.read_text().splitlines()) for p in run.glob("*/result.json")) if run.exists() else 0


def interrupt_after_a_result(args, run, sig, timeout=300):
    """Start `pairtune ARGS`, wait until a trial reports a new result, send `sig` to the driver;
    the finished process (its output merged into stdout)."""
    before = result_lines(run)
    proc = subprocess.Popen([sys.executable, "-m", "search.cli", *args], start_new_session=True, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while result_lines(run) <= before:
            assert proc.poll() is None, "ended before it could be interrupted:\n" + proc.stdout.read()[-3000:]
            assert time.monotonic() < deadline, "no result reported"
            time.sleep(0.3)
        os.kill(proc.pid, sig)  # the driver only, as `kill` or `ray job stop` does
        out, _ = proc.communicate(timeout=180)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of it and its local Ray
        except ProcessLookupError:
            pass
        proc.wait()
    return proc.returncode, out


def test_sigint_then_sigterm_stop_gracefully_and_the_run_resumes(tmp_path, tiny_backbone, ruddit_pairs, run_cli):
    from ray import tune

    config = {
        "data": {"pairs": str(ruddit_pairs), "max_votes": 900, "folds": 4, "max_length": 32},
        "model": {"backbone": tiny_backbone},
        "train": {"epochs": 4, "batch_size": 32, "val_every_n_steps": 3},
        "search": {"name": "s", "storage_path": str(tmp_path / "my runs"), "num_samples": 2,
                   "max_concurrent_trials": 1, "scheduler": "fifo", "baseline": False,
                   "space": {"train.lr": {"loguniform": [1e-4, 1e-2]}}},
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    run = tmp_path / "my runs" / "s"
    resume = f"pairtune resume {shlex.quote(str(run))}"  # the path has a space: quoted

    code, out = interrupt_after_a_result(["search", str(path)], run, signal.SIGINT)
    assert code == 130, out[-4000:]
    assert "interrupted" in out and resume in out, out[-4000:]
    assert "search finished" not in out and "no trial has reported" not in out, out[-4000:]
    assert tune.Tuner.can_restore(str(run))
    exported = run_cli("export", str(run))  # the results so far: the trial that reported is there
    assert exported.returncode == 0 and "interrupted" in exported.stdout, exported.stdout + exported.stderr

    reported = result_lines(run)
    code, out = interrupt_after_a_result(["resume", str(run)], run, signal.SIGTERM)
    assert code == 143, out[-4000:]
    assert "interrupted" in out and resume in out, out[-4000:]
    assert "*** SIGTERM received" not in out, out[-4000:]  # Ray's C++ handler's dump before it aborted (exit 134)
    assert result_lines(run) > reported  # the resume did continue the search
    assert tune.Tuner.can_restore(str(run))
