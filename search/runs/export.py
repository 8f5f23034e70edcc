"""Reading a finished (or interrupted) search: leaderboard, best config, best checkpoint."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from model.metrics import AGREEMENT, METRIC_MODES
from search.config.parse import ConfigError, PairtuneConfig, with_params
from search.runs import storage
from search.runs.layout import (
    BEST_YAML,
    CHECKPOINT_SCORE,
    CPU_SECONDS,
    DATA_FILE,
    EPOCH,
    EXPORT_DIR,
    GPU_SECONDS,
    LEADERBOARD,
    STOPS_FILE,
    SUMMARY,
    WALL,
    ended_by,
    load_run_config,
    read_baseline,
    require_run,
)
from search.runs.intervals import add_intervals
from search.runs.results import read_jsonl, read_run, refuse_damaged

log = logging.getLogger(__name__)


@dataclass
class Export:
    out_dir: Path | str
    best_yaml: Path | str
    leaderboard: pd.DataFrame
    best_checkpoint: str | None
    best_agreement: float
    summary: dict = field(default_factory=dict)
    baseline: dict | None = None  # search.baseline's result, when the search computed it


def _error_message(trial, run: Path) -> str:
    path = run / trial.trial_id / "error.txt"  # trial directories are named by trial id
    if not path.exists():
        try:  # Ray's own record
            path = Path(trial.error_file) if trial.error_file else None
        except (AssertionError, OSError):  # Ray asserts a session exists for some storage layouts
            path = None
    if not path or not path.exists():
        return ""
    lines = [ln.strip() for ln in Path(path).read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1] if lines else ""


COST_COLUMNS = {"wall_s": WALL, "cpu_s": CPU_SECONDS, "gpu_s": GPU_SECONDS}  # leaderboard column -> result key


def metric_column(metric: str) -> str:
    """Leaderboard column of a searched metric other than agreement, e.g. val/pearson -> best_pearson."""
    return "best_" + metric.split("/")[-1]


def _trial_row(trial, frame: pd.DataFrame, max_epochs: int, asha_stopped: set[str], run: Path,
               metric: str = AGREEMENT) -> dict:
    row = {"trial_id": trial.trial_id, **{f"param:{k}": v for k, v in trial.config.items()}}
    has = AGREEMENT in frame.columns and len(frame)
    if metric != AGREEMENT:  # the searched metric leads; agreement over derived pairs follows
        values = frame[metric].dropna() if metric in frame.columns and len(frame) else pd.Series(dtype=float)
        best = values.max() if METRIC_MODES[metric] == "max" else values.min()
        row[metric_column(metric)] = float(best) if len(values) else math.nan
    row["best_agreement"] = float(frame[AGREEMENT].max()) if has else math.nan
    row["last_agreement"] = float(frame[AGREEMENT].iloc[-1]) if has else math.nan
    row["epochs_run"] = float(frame[EPOCH].max()) if has else 0.0
    for column, key in COST_COLUMNS.items():  # what the trial used, as of its last result
        row[column] = float(frame[key].iloc[-1]) if has and key in frame.columns else math.nan
    final = bool(has and "final" in frame.columns and frame["final"].iloc[-1])
    epochs = trial.config.get("train.epochs", max_epochs)
    if trial.status == "ERROR":
        row["outcome"], row["error"] = "error", _error_message(trial, run)
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
    """Which budget ended the search (search/tune/budget.py), num_samples when every trial ran, or
    interrupted when neither (e.g. the driver was stopped; `pairtune resume` continues it)."""
    end = ended_by(run)
    if end["ended_by"] is None:
        running = board["outcome"].isin(["running", "pending", "paused"]).sum() if len(board) else 0
        end["ended_by"] = "num_samples" if len(board) >= base.search.num_samples and not running else "interrupted"
    return end


def asha_stops(run: Path, shown=None) -> set[str]:
    """Trials ASHA stopped early; a damaged line of the stops file is skipped, loudly."""
    path = run / STOPS_FILE
    if not path.exists():
        return set()
    rows, problem = read_jsonl(path, storage.join(shown, STOPS_FILE) if shown else None)
    if problem:
        log.warning("%s; trials it names on damaged lines are not marked stopped_by_asha", problem)
    return {row["trial_id"] for row in rows if "trial_id" in row}


def leaderboard(run: Path, base: PairtuneConfig, strict: bool = True, shown=None):
    """A row per trial, best first, with its 95% interval and paired comparison with the best
    (search/runs/intervals.py), and the records it came from (search/runs/results.py; `intervals` says
    what the intervals were computed from). With `strict`, a damaged trial record raises DamagedRun;
    without, its trial's row says "damaged" and what is wrong."""
    metric = base.search.metric
    records = read_run(run, metric, base.search.mode, shown)
    if strict:
        refuse_damaged(records, shown or run)
    stopped = asha_stops(run, shown)
    rows = []
    for t in records.trials:
        row = _trial_row(t, records.frames[t.trial_id], base.train.epochs, stopped, run, metric)
        if t.trial_id in records.problems:
            row["outcome"], row["error"] = "damaged", records.problems[t.trial_id]
        rows.append(row)
    board = pd.DataFrame(rows)
    if len(board):
        key = "best_agreement" if metric == AGREEMENT else metric_column(metric)
        ascending = METRIC_MODES[metric] == "min"
        board = board.sort_values(key, ascending=ascending, na_position="last").reset_index(drop=True)
        board, records.intervals = add_intervals(board, run, {t.trial_id: t.dirname for t in records.trials}, metric)
    return board, records


def best_checkpoint(run: Path, trial_id: str, metric: str, mode: str) -> str | None:
    """The path of a trial's best checkpoint, as Ray's checkpoint manager recorded it (pickled in the
    experiment state, so this asks Ray: the one part of reading a run that does)."""
    from ray.tune import ExperimentAnalysis

    analysis = ExperimentAnalysis(str(run), default_metric=metric, default_mode=mode)
    trial = next(t for t in analysis.trials if t.trial_id == trial_id)
    checkpoint = analysis.get_best_checkpoint(trial, CHECKPOINT_SCORE, "max")
    return checkpoint.path if checkpoint is not None else None


def export_run(run: str | Path, out_dir: str | Path | None = None) -> Export:
    """Write best.yaml (the CLI's schema, all values fixed), leaderboard.csv and summary.json.

    `run` may be a URI (s3://, gs://, file://): its results are read through pyarrow, the export is
    written back to RUN/export there (or to out_dir), and checkpoint paths are given as URIs."""
    if not storage.is_uri(run):
        return _export_local(Path(run).expanduser().resolve(), out_dir)
    run = storage.location(run)
    require_run(run)
    target = storage.location(out_dir) if out_dir else storage.join(run, EXPORT_DIR)
    with storage.local_view(run) as local:
        exported = _export_local(local, None, shown_as=run, shown_out=target)
        storage.upload(exported.out_dir, target)
    return dataclasses.replace(exported, out_dir=target, best_yaml=storage.join(target, BEST_YAML))


def validation_fold(run: Path) -> dict:
    """The validation fold's size and how noisy an agreement on it is, from the run's data summary
    (data/prepare.py wrote both); nothing for a run from before they were recorded."""
    path = run / DATA_FILE
    data = json.loads(path.read_text()) if path.exists() else {}
    return {k: data[k] for k in ("val_votes", "val_agreement_noise_95") if k in data}


def _export_local(run: Path, out_dir, shown_as: str | None = None, shown_out=None) -> Export:
    """export_run on a local directory; `shown_as` and `shown_out` are the run's and the export's real
    locations when `run` is a local copy of a run in shared storage."""
    shown = shown_as or str(run)
    base = load_run_config(run)
    board, records = leaderboard(run, base, shown=shown_as)  # raises on a damaged record: nothing is written
    metric = base.search.metric
    key = "best_agreement" if metric == AGREEMENT else metric_column(metric)
    scored = board.dropna(subset=[key]) if len(board) else board
    if not len(scored):
        raise ConfigError([f"{run}: no trial has reported a validation result yet"])
    best = scored.iloc[0]
    trial = next(t for t in records.trials if t.trial_id == best["trial_id"])
    best_cfg = with_params(base, dict(trial.config))
    checkpoint_path = best_checkpoint(run, trial.trial_id, metric, base.search.mode)
    if checkpoint_path and shown_as:  # the copy's path -> the checkpoint's place in shared storage
        checkpoint_path = str(storage.join(shown_as, *Path(checkpoint_path).relative_to(run).parts))
    out = Path(out_dir) if out_dir else run / EXPORT_DIR
    storage.require_writable(out, flag="--out" if out_dir else "")
    final = shown_out or out
    train = (f"pairtune export {shlex.quote(str(shown))} --out DIR, then pairtune train DIR/{BEST_YAML}" if storage.is_uri(final)
             else f"pairtune train {shlex.quote(str(storage.join(final, BEST_YAML)))}")
    header = (
        f"# Best config of {shown} (trial {best['trial_id']}, {metric} {best[key]:.4f}).\n"
        f"# Train it with: {train}\n"
        f"# Best checkpoint: {checkpoint_path}\n"
    )
    (out / BEST_YAML).write_text(header + best_cfg.to_yaml(), encoding="utf-8")
    board.to_csv(out / LEADERBOARD, index=False)
    summary = {
        "run": shown,
        "best_trial": best["trial_id"],
        "best_agreement": float(best["best_agreement"]),
        "metric": metric,
        "best_value": float(best[key]),
        "best_checkpoint": checkpoint_path,
        "trials": len(board),
        "outcomes": board["outcome"].value_counts().to_dict(),
        "baseline": read_baseline(run),
        **validation_fold(run),
        "intervals": records.intervals,
        **search_end(run, base, board),
    }
    (out / SUMMARY).write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return Export(out, out / BEST_YAML, board, checkpoint_path, float(best["best_agreement"]), summary, summary["baseline"])
