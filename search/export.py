"""Reading a finished (or interrupted) search: leaderboard, best config, best checkpoint."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from model.ranker import AGREEMENT, METRIC_MODES
from search.baseline import read_baseline
from search.budget import ended_by
from search.config import ConfigError, PairtuneConfig, with_params
from search.trial import CHECKPOINT_SCORE, EPOCH
from search.tuner import STOPS_FILE, load_run_config

log = logging.getLogger(__name__)

BEST_YAML = "best.yaml"
LEADERBOARD = "leaderboard.csv"
SUMMARY = "summary.json"


@dataclass
class Export:
    out_dir: Path
    best_yaml: Path
    leaderboard: pd.DataFrame
    best_checkpoint: str | None
    best_agreement: float
    summary: dict = field(default_factory=dict)
    baseline: dict | None = None  # search.baseline's result, when the search computed it


def _error_message(trial) -> str:
    path = trial.error_file
    if not path or not Path(path).exists():
        return ""
    lines = [ln.strip() for ln in Path(path).read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def metric_column(metric: str) -> str:
    """Leaderboard column of a searched metric other than agreement, e.g. val/pearson -> best_pearson."""
    return "best_" + metric.split("/")[-1]


def _trial_row(trial, frame: pd.DataFrame, max_epochs: int, asha_stopped: set[str], metric: str = AGREEMENT) -> dict:
    row = {"trial_id": trial.trial_id, **{f"param:{k}": v for k, v in trial.config.items()}}
    has = AGREEMENT in frame.columns and len(frame)
    if metric != AGREEMENT:  # the searched metric leads; agreement over derived pairs follows
        values = frame[metric].dropna() if metric in frame.columns and len(frame) else pd.Series(dtype=float)
        best = values.max() if METRIC_MODES[metric] == "max" else values.min()
        row[metric_column(metric)] = float(best) if len(values) else math.nan
    row["best_agreement"] = float(frame[AGREEMENT].max()) if has else math.nan
    row["last_agreement"] = float(frame[AGREEMENT].iloc[-1]) if has else math.nan
    row["epochs_run"] = float(frame[EPOCH].max()) if has else 0.0
    final = bool(has and "final" in frame.columns and frame["final"].iloc[-1])
    epochs = trial.config.get("train.epochs", max_epochs)
    if trial.status == "ERROR":
        row["outcome"], row["error"] = "error", _error_message(trial)
    elif trial.status != "TERMINATED":
        row["outcome"], row["error"] = trial.status.lower(), ""
    elif final and row["epochs_run"] >= epochs:
        row["outcome"], row["error"] = "finished", ""
    elif final:
        row["outcome"], row["error"] = "early_stopping", ""
    elif trial.trial_id in asha_stopped:
        row["outcome"], row["error"] = "stopped_by_asha", ""
    else:  # ended from outside: the search's time budget or target, or the driver stopping
        row["outcome"], row["error"] = "stopped_by_search_end", ""
    return row


def search_end(run: Path, base: PairtuneConfig, board: pd.DataFrame) -> dict:
    """Which budget ended the search (search/budget.py), num_samples when every trial ran, or
    interrupted when neither (e.g. the driver was stopped; `pairtune resume` continues it)."""
    end = ended_by(run)
    if end["ended_by"] is None:
        running = board["outcome"].isin(["running", "pending", "paused"]).sum() if len(board) else 0
        end["ended_by"] = "num_samples" if len(board) >= base.search.num_samples and not running else "interrupted"
    return end


def asha_stops(run: Path) -> set[str]:
    path = run / STOPS_FILE
    if not path.exists():
        return set()
    return {json.loads(line)["trial_id"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}


def leaderboard(run: Path, base: PairtuneConfig):
    """A row per trial, best first, and the ExperimentAnalysis it came from."""
    from ray.tune import ExperimentAnalysis

    metric = base.search.metric
    analysis = ExperimentAnalysis(str(run), default_metric=metric, default_mode=base.search.mode)
    frames = analysis.trial_dataframes
    stopped = asha_stops(run)
    rows = [_trial_row(t, frames.get(t.trial_id, pd.DataFrame()), base.train.epochs, stopped, metric) for t in analysis.trials]
    board = pd.DataFrame(rows)
    if len(board):
        key = "best_agreement" if metric == AGREEMENT else metric_column(metric)
        ascending = METRIC_MODES[metric] == "min"
        board = board.sort_values(key, ascending=ascending, na_position="last").reset_index(drop=True)
    return board, analysis


def export_run(run: str | Path, out_dir: str | Path | None = None) -> Export:
    """Write best.yaml (the CLI's schema, all values fixed), leaderboard.csv and summary.json."""
    run = Path(run).expanduser().resolve()
    base = load_run_config(run)
    board, analysis = leaderboard(run, base)
    metric = base.search.metric
    key = "best_agreement" if metric == AGREEMENT else metric_column(metric)
    scored = board.dropna(subset=[key]) if len(board) else board
    if not len(scored):
        raise ConfigError([f"{run}: no trial has reported a validation result yet"])
    best = scored.iloc[0]
    trial = next(t for t in analysis.trials if t.trial_id == best["trial_id"])
    best_cfg = with_params(base, dict(trial.config))
    checkpoint = analysis.get_best_checkpoint(trial, CHECKPOINT_SCORE, "max")
    checkpoint_path = checkpoint.path if checkpoint is not None else None
    out = Path(out_dir) if out_dir else run / "export"
    out.mkdir(parents=True, exist_ok=True)
    header = (
        f"# Best config of {run} (trial {best['trial_id']}, {metric} {best[key]:.4f}).\n"
        f"# Train it with: pairtune train {out / BEST_YAML}\n"
        f"# Best checkpoint: {checkpoint_path}\n"
    )
    (out / BEST_YAML).write_text(header + best_cfg.to_yaml(), encoding="utf-8")
    board.to_csv(out / LEADERBOARD, index=False)
    summary = {
        "run": str(run),
        "best_trial": best["trial_id"],
        "best_agreement": float(best["best_agreement"]),
        "metric": metric,
        "best_value": float(best[key]),
        "best_checkpoint": checkpoint_path,
        "trials": len(board),
        "outcomes": board["outcome"].value_counts().to_dict(),
        "baseline": read_baseline(run),
        **search_end(run, base, board),
    }
    (out / SUMMARY).write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return Export(out, out / BEST_YAML, board, checkpoint_path, float(best["best_agreement"]), summary, summary["baseline"])
