"""Damaged or unstarted run directories: every reader says which file is wrong, nothing is ranked
quietly, and a correct earlier export is never overwritten (issue 20, items 1 and 10)."""

import json
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml

from search.config.parse import parse_config
from search.runs.layout import CONFIG_FILE


def write_unstarted_run(tmp_path):
    run = tmp_path / "runs" / "never"
    run.mkdir(parents=True)
    cfg = parse_config({"search": {"name": "never", "storage_path": str(tmp_path / "runs")}}, "mem")
    (run / CONFIG_FILE).write_text(cfg.to_yaml())
    return run


@pytest.mark.parametrize("command", ["export", "report"])
def test_a_run_that_never_started_is_a_clear_error(command, tmp_path, run_cli):
    run = write_unstarted_run(tmp_path)
    out = run_cli(command, str(run))
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    assert out.stderr.startswith(f"pairtune: error: {run}: ") and "never started" in out.stderr, out.stderr
    assert not out.started_ray


def test_jsonl_reader_keeps_the_complete_lines_and_names_the_damage(tmp_path):
    from search.runs.results import read_jsonl

    path = tmp_path / "result.json"
    rows = [{"epoch": i, "val/agreement": 0.5 + i / 10} for i in range(1, 5)]
    text = "".join(json.dumps(r) + "\n" for r in rows)
    cut = text.index("\n", text.index("\n") + 1) + 10  # inside the third line
    path.write_text(text[:cut])
    got, problem = read_jsonl(path)
    assert got == rows[:2]
    assert problem is not None and str(path) in problem and "line 3" in problem
    path.write_text(text)
    assert read_jsonl(path) == (rows, None)


def test_a_file_cut_between_lines_is_caught_by_the_experiment_state(tmp_path):
    """A cut at a line end leaves valid JSON lines: the trial's last result in Ray's state says more."""
    from search.runs.results import trial_record

    rows = [{"training_iteration": i, "epoch": i / 2, "val/agreement": 0.5 + i / 10} for i in range(1, 5)]
    (tmp_path / "t1").mkdir()
    path = tmp_path / "t1" / "result.json"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows[:2]))
    trial = SimpleNamespace(dirname="t1", last_result=rows[-1])
    record = trial_record(trial, tmp_path)
    assert len(record.frame) == 2 and record.problem.startswith(f"{path}: damaged: ends at result 2")
    path.unlink()
    assert trial_record(trial, tmp_path).problem.startswith(f"{path}: damaged: missing")
    trial.last_result = None  # never reported: no file is expected
    assert trial_record(trial, tmp_path).problem is None


# A real finished search (2 tiny-BERT trials, about a minute), damaged afterwards.

@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_backbone, ruddit_pairs):
    import subprocess
    import sys

    tmp = tmp_path_factory.mktemp("damaged")
    config = {
        "data": {"pairs": str(ruddit_pairs), "max_votes": 600, "folds": 4, "max_length": 32},
        "model": {"backbone": tiny_backbone},
        "train": {"epochs": 2, "batch_size": 32, "val_every_n_steps": 4},
        "search": {"name": "d", "storage_path": str(tmp / "runs"), "num_samples": 2, "max_concurrent_trials": 2,
                   "scheduler": "fifo", "points_to_evaluate": [{"train.lr": 3e-3}, {"train.lr": 1e-6}],
                   "space": {"train.lr": {"loguniform": [1e-6, 1e-2]}}},
    }
    path = tmp / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    out = subprocess.run([sys.executable, "-m", "search.cli", "search", str(path)], capture_output=True, text=True,
                         timeout=900, check=False)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return tmp / "runs" / "d"


@pytest.mark.slow
def test_a_cut_result_file_stops_export_report_and_resume_without_touching_the_export(finished_run, run_cli, capsys):
    from search.cli.searching import _finish

    run = finished_run
    export = run / "export"
    summary = json.loads((export / "summary.json").read_text())
    before = {name: (export / name).read_bytes() for name in ("best.yaml", "summary.json", "leaderboard.csv")}
    best = run / summary["best_trial"] / "result.json"
    board = pd.read_csv(export / "leaderboard.csv")
    assert len(board) == 2 and board.best_agreement.notna().all()
    text = best.read_text()
    best.write_text(text[: len(text) // 2])
    try:
        out = run_cli("export", str(run))
        assert out.returncode == 2, out.stdout + out.stderr
        assert f"{best}: " in out.stderr and "Traceback" not in out.stderr, out.stderr
        for name, data in before.items():  # the correct export stays as it was
            assert (export / name).read_bytes() == data, name

        out = run_cli("report", str(run))
        assert out.returncode == 2 and f"{best}: " in out.stderr, out.stdout + out.stderr

        # What `search` and `resume` run once Tune returns (resume of a finished run: no trial reruns).
        code = _finish([], run)
        err = capsys.readouterr().err
        assert code == 2 and f"{best}: " in err, err
        for name, data in before.items():
            assert (export / name).read_bytes() == data, name

        out = run_cli("status", str(run))  # the live view shows what it can, and says what it could not read
        assert out.returncode == 0
        assert f"{best}: " in out.stdout and "damaged" in out.stdout, out.stdout
    finally:
        best.write_text(text)
