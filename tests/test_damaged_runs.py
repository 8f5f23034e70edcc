"""Damaged or unstarted run directories: every reader says which file is wrong, nothing is ranked
quietly, and a correct earlier export is never overwritten (issue 20, items 1 and 10)."""

import json
from types import SimpleNamespace

import pytest
from runfiles import read_leaderboard

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


# A real finished search, damaged afterwards: a copy of conftest's small_search, the search the whole run shares.

@pytest.mark.slow
def test_a_cut_result_file_stops_export_report_and_resume_without_touching_the_export(shared_run_copy, small_search, run_cli,
                                                                                       capsys):
    from conftest import SHARED_TRIALS

    from search.cli.searching import _finish

    run = shared_run_copy
    export = run / "export"
    summary = json.loads((export / "summary.json").read_text())
    before = {name: (export / name).read_bytes() for name in ("best.yaml", "summary.json", "leaderboard.csv")}
    best = run / summary["best_trial"] / "result.json"
    board = read_leaderboard(export / "leaderboard.csv")
    assert len(board) == SHARED_TRIALS and board.best_agreement[board.outcome != "error"].notna().all()
    text = best.read_text()
    best.write_text(text[: len(text) // 2])
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
    assert (small_search.run / summary["best_trial"] / "result.json").read_text() == text  # only the copy was damaged
