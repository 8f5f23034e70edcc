"""`pairtune report` on a real (tiny) search run: plots are real PNGs, index.html shows them."""

import json

import numpy as np
import pandas as pd
import pytest
from runfiles import read_leaderboard

from search.config.parse import parse_config
from search.config.space import searched_dimensions
from search.runs.layout import load_run_config
from search.runs.report import best_so_far, param_importances, pareto_front, ranked_trials, trial_curves

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run_dir(small_search):
    return small_search.run  # conftest's search the whole run shares: TPE + ASHA, two of its trials fail


def scored_trials(run_dir) -> int:
    """Trials that reported a validation: every one but the two that fail (test_failing_trials)."""
    board = read_leaderboard(run_dir / "export" / "leaderboard.csv")
    assert (board.outcome == "error").sum() == 2, board.outcome
    return int((board.outcome != "error").sum())


@pytest.mark.slow
def test_report_writes_png_plots_and_an_index_that_shows_them(run_dir, tmp_path, run_cli):
    out = run_cli("report", str(run_dir), "--out", str(tmp_path / "rep"))
    assert out.returncode == 0, out.stderr[-3000:]
    rep = tmp_path / "rep"
    expected = ["progress.png", "best_so_far.png", "importances.png", "param_train_lr.png", "param_train_margin.png",
                "param_train_loss.png", "param_model_backbone.png", "cost.png"]
    for name in expected:
        data = (rep / name).read_bytes()
        assert data[:8] == PNG_MAGIC, name
        assert len(data) > 5000, name  # a real figure, not an empty canvas
    page = (rep / "index.html").read_text()
    for name in expected:
        assert f"src='{name}'" in page
    board = read_leaderboard(run_dir / "export" / "leaderboard.csv")
    for trial_id in board.trial_id:
        assert trial_id in page  # the leaderboard table lists every trial
    importances = json.loads((rep / "report.json").read_text())["importances"]
    assert set(importances) == {"train.lr", "train.margin", "train.loss", "model.backbone"}
    assert sum(importances.values()) == pytest.approx(1.0)
    assert str(rep / "index.html") in out.stdout
    # The trials no trial beats at the same or a lower cost are named under the cost plot.
    front = pareto_front(ranked_trials(run_dir, load_run_config(run_dir))[0], "cpu_s", "max")
    assert front and f"at the same or a lower cost: {', '.join(front)}." in page


@pytest.mark.slow
def test_best_so_far_is_monotone_and_sums_the_epochs_trials_reported(run_dir):
    from ray.tune import ExperimentAnalysis

    analysis = ExperimentAnalysis(str(run_dir), default_metric="val/agreement", default_mode="max")
    curves = trial_curves(analysis.trial_dataframes, "val/agreement")
    assert len(curves) == scored_trials(run_dir) >= 4  # the failed trials reported nothing to draw
    for frame in curves.values():
        assert (np.diff(frame["wall_s"]) >= 0).all()
    progress = best_so_far(curves, "val/agreement")
    assert (np.diff(progress["best"]) >= 0).all()
    total_epochs = sum(float(f["epoch"].max()) for f in curves.values())
    assert progress["compute_epochs"].iloc[-1] == pytest.approx(total_epochs)
    assert progress["best"].iloc[-1] == pytest.approx(max(f["val/agreement"].max() for f in curves.values()))


def test_the_pareto_front_holds_the_trials_no_cheaper_or_equal_trial_beats():
    board = pd.DataFrame({"trial_id": list("abcdef"), "cpu_s": [10, 20, 20, 30, 40, np.nan],
                          "best_value": [0.60, 0.65, 0.70, 0.68, 0.75, 0.99]})
    assert pareto_front(board, "cpu_s", "max") == ["a", "c", "e"]  # b ties c's cost and is worse; d is beaten by c; f has no cost
    assert pareto_front(board.assign(best_value=1 - board.best_value), "cpu_s", "min") == ["a", "c", "e"]  # a loss: lower is better
    assert pareto_front(board.iloc[:0], "cpu_s", "max") == []


def test_importances_say_why_when_there_are_too_few_trials():
    cfg = parse_config({"search": {"space": {"train.lr": {"loguniform": [1e-5, 1e-3]}, "train.margin": {"uniform": [0.1, 1]}}}})
    dims = searched_dimensions(cfg)
    board = pd.DataFrame({"param:train.lr": [1e-4, 2e-4], "param:train.margin": [0.2, 0.5], "best_value": [0.6, 0.7]})
    importances, note = param_importances(board, dims, "max")
    assert importances == {} and "only 2 scored trial(s)" in note
    rng = np.random.default_rng(0)
    lr = 10 ** rng.uniform(-5, -3, 24)
    board = pd.DataFrame({"param:train.lr": lr, "param:train.margin": rng.uniform(0.1, 1, 24),
                          "best_value": -np.abs(np.log10(lr) + 4)})  # only lr matters
    importances, note = param_importances(board, dims, "max")
    assert "fANOVA over 24 trials" in note
    assert importances["train.lr"] > 2 * importances["train.margin"]


def test_report_on_a_directory_that_is_not_a_run_fails_cleanly(tmp_path, run_cli):
    out = run_cli("report", str(tmp_path))
    assert out.returncode == 2
    assert out.stderr.strip().startswith("pairtune: error:") and "not a pairtune run directory" in out.stderr
    assert "Traceback" not in out.stderr
