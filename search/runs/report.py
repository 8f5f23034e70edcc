"""`pairtune report RUN`: what a search learned, as PNG plots and an index.html that shows them.

Reads a run directory (storage_path/name) as `export` does: every trial's reported results, the
sampled parameters, the ASHA stops (pairtune_stops.jsonl) and the base config (its search space).

- progress.png: the searched metric against wall time since the search started, one line per trial;
  a trial ASHA stopped ends in an x, so the scheduler's decisions are visible.
- best_so_far.png: the best metric so far against compute spent (epochs trained, summed over all
  trials, in the order results arrived): how fast the search found what it found.
- importances.png: parameter importances (Optuna's fANOVA evaluator, seeded) on a study rebuilt from
  the trials, each trial valued by its best metric.
- param_<key>.png: the metric against each searched parameter (log x for log-scaled ranges).
- cost.png: each trial's best metric against what it used (GPU-seconds when the trials had GPUs,
  else CPU-seconds: its reserved resources times its wall time), the Pareto front marked: the trials
  no other trial beats at the same or a lower cost.
- the leaderboard, with each trial's 95% interval; trials tied with the best at 95% are marked.
"""

from __future__ import annotations

import html
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from search.config.parse import ConfigError, PairtuneConfig
from search.config.space import Dimension, searched_dimensions
from search.runs import storage
from search.runs.intervals import interval_text, tied_line
from search.runs.layout import EPOCH, load_run_config
from search.runs.plots import outcome_style, plot_best_so_far, plot_cost, plot_importances, plot_parameter, plot_progress

log = logging.getLogger(__name__)

INDEX = "index.html"
MIN_TRIALS_FOR_IMPORTANCE = 4  # fANOVA fits a random forest on the trials: fewer say nothing


@dataclass
class Report:
    out_dir: Path
    index: Path
    plots: list[Path]
    notes: list[str] = field(default_factory=list)
    importances: dict[str, float] = field(default_factory=dict)


def trial_curves(frames: dict[str, pd.DataFrame], metric: str) -> dict[str, pd.DataFrame]:
    """Per trial: its results with `wall_s` (seconds since the search's first trial started).

    Ray stamps results with whole-second `timestamp`s and precise per-trial `time_total_s`; a trial's
    start is its first result's timestamp less its time_total_s, and each result sits at start +
    time_total_s, so points within a trial keep sub-second spacing.
    """
    curves, starts = {}, {}
    for trial_id, frame in frames.items():
        if metric not in frame.columns or not len(frame) or "time_total_s" not in frame.columns:
            continue
        frame = frame.dropna(subset=[metric]).reset_index(drop=True)
        if not len(frame):
            continue
        if "timestamp" in frame.columns:
            starts[trial_id] = float((frame["timestamp"] - frame["time_total_s"]).min())
        else:
            starts[trial_id] = 0.0
        curves[trial_id] = frame
    if not curves:
        return {}
    origin = min(starts.values())
    for trial_id, frame in curves.items():
        frame["wall_s"] = starts[trial_id] - origin + frame["time_total_s"].astype(float)
    return curves


def best_so_far(curves: dict[str, pd.DataFrame], metric: str, mode: str = "max") -> pd.DataFrame:
    """Every result of every trial in arrival order, with the epochs trained so far by all trials
    together (`compute_epochs`) and the best metric seen so far (`best`)."""
    rows = []
    for trial_id, frame in curves.items():
        epochs = frame[EPOCH].astype(float).to_numpy() if EPOCH in frame.columns else np.arange(1, len(frame) + 1.0)
        spent = np.diff(np.concatenate([[0.0], epochs]))
        spent = np.where(spent < 0, epochs, spent)  # a retried trial restarts from an earlier epoch
        for wall, value, s in zip(frame["wall_s"], frame[metric], spent):
            rows.append((float(wall), trial_id, float(value), float(s)))
    out = pd.DataFrame(rows, columns=["wall_s", "trial_id", "value", "spent"]).sort_values("wall_s", kind="stable")
    out["compute_epochs"] = out["spent"].cumsum()
    out["best"] = out["value"].cummax() if mode == "max" else out["value"].cummin()
    return out.reset_index(drop=True)


def rebuild_study(board: pd.DataFrame, dims: list[Dimension], mode: str):
    """An Optuna study holding one finished trial per scored search trial, valued by its best metric.

    Trials whose values lie outside the space (a points_to_evaluate entry may) are left out and counted.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if mode == "max" else "minimize")
    distributions = {d.key: d.to_optuna() for d in dims}
    skipped = 0
    for _, row in board.iterrows():
        value = row.get("best_value")
        if value is None or not math.isfinite(value):
            continue
        params = {}
        for d in dims:
            v = row.get(f"param:{d.key}")
            if v is None or (isinstance(v, float) and math.isnan(v)):
                break
            params[d.key] = int(v) if d.kind in ("int", "logint") else (float(v) if d.kind in ("loguniform", "uniform") else v)
        else:
            try:
                study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions, value=float(value)))
            except ValueError:
                skipped += 1
    return study, skipped


def param_importances(board: pd.DataFrame, dims: list[Dimension], mode: str, seed: int = 0) -> tuple[dict[str, float], str]:
    """(importances, note). Empty importances, with a note saying why, when they cannot be judged."""
    import optuna

    if not dims:
        return {}, "nothing was searched (search.space has no ranges or choices)"
    study, skipped = rebuild_study(board, dims, mode)
    n = len(study.trials)
    skip_note = f"; {skipped} trial(s) outside the search space left out" if skipped else ""
    if n < MIN_TRIALS_FOR_IMPORTANCE:
        return {}, f"only {n} scored trial(s){skip_note}: importances need at least {MIN_TRIALS_FOR_IMPORTANCE}"
    if len(dims) == 1:
        return {dims[0].key: 1.0}, f"one searched parameter: it carries all the importance{skip_note}"
    try:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
        name = "fANOVA"
        importances = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except ImportError:  # fANOVA's random forest needs scikit-learn
        evaluator = optuna.importance.PedAnovaImportanceEvaluator()
        name = "PED-ANOVA (scikit-learn not installed, so no fANOVA)"
        importances = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (ValueError, RuntimeError) as e:
        return {}, f"importances could not be computed from {n} trials: {e}"
    return {k: float(v) for k, v in importances.items()}, f"{name} over {n} trials, each valued by its best result{skip_note}"


def _safe_name(key: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in key)


TIED_MARK = "≈"  # after a trial id in the report's leaderboard: tied with the best at 95%


def _intervals_paragraph(intervals: dict) -> str:
    """What the intervals say, above the leaderboard: the best's interval and who is tied with it."""
    line = tied_line(intervals)
    if not line:
        return f"<p class='note'>No intervals: {html.escape(intervals.get('note', 'none computed'))}.</p>"
    interval = interval_text(intervals)
    return (f"<p>Best trial {html.escape(intervals['best_trial'])}: {html.escape(interval)} of its validation agreement. "
            f"{html.escape(line)}. Tied trials are marked {TIED_MARK} below; ci95_low and ci95_high are each trial's "
            "interval, p_ge_best the share of resamples in which it is at least as good as the best.</p>")


def _marked(board: pd.DataFrame, intervals: dict) -> pd.DataFrame:
    tied = set(intervals.get("tied_with_best", []))
    return board.assign(trial_id=[f"{t} {TIED_MARK}" if t in tied else t for t in board.trial_id])


def _html_page(run: Path, cfg: PairtuneConfig, board: pd.DataFrame, sections: list[tuple[str, str | None, str]],
               intervals: dict | None = None) -> str:
    metric = cfg.search.metric
    scored = board.dropna(subset=["best_value"])
    outcomes = ", ".join(f"{n} {outcome_style(o)[1]}" for o, n in board["outcome"].value_counts().items())
    best = (
        f"best {html.escape(metric)} {scored['best_value'].iloc[0]:.4f} (trial {html.escape(str(scored['trial_id'].iloc[0]))})"
        if len(scored) else "no trial has reported a result yet"
    )
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>pairtune report: {html.escape(cfg.search.name)}</title>",
        ("<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}"
        "img{max-width:100%;border:1px solid #ddd}figure{margin:1.5em 0}figcaption{color:#555;font-size:0.9em}"
        "table{border-collapse:collapse;font-size:0.8em}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}"
        "th{background:#f3f3f3}.note{color:#a60}</style></head><body>"),
        f"<h1>Search report: {html.escape(cfg.search.name)}</h1>",
        f"<p>Run <code>{html.escape(str(run))}</code>: {len(board)} trials ({html.escape(outcomes)}); {best}.</p>",
    ]
    for title, image, caption in sections:
        parts.append(f"<h2>{html.escape(title)}</h2>")
        if image:
            parts.append(f"<figure><img src='{html.escape(image)}' alt='{html.escape(title)}'>"
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        else:
            parts.append(f"<p class='note'>{html.escape(caption)}</p>")
    table = _marked(board.drop(columns=["best_value"]), intervals or {})  # the metric has its own column
    parts.append("<h2>Leaderboard</h2>")
    parts.append(_intervals_paragraph(intervals or {}))
    parts.append(table.to_html(index=False, na_rep="", float_format=lambda x: f"{x:.4g}", border=0))
    parts.append("</body></html>")
    return "\n".join(parts)


def ranked_trials(run: Path, cfg: PairtuneConfig) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], dict]:
    """The leaderboard with each trial's best value of the searched metric (best first), each trial's
    curve of it, and what its intervals came from; a ConfigError when nothing has been reported yet."""
    from search.runs.export import leaderboard

    metric, mode = cfg.search.metric, cfg.search.mode
    board, records = leaderboard(run, cfg)  # raises on a damaged trial record, naming the file
    if not len(board):
        raise ConfigError([f"{run}: the run has no trials yet"])
    curves = trial_curves(records.frames, metric)
    if not curves:
        raise ConfigError([f"{run}: no trial has reported {metric} yet"])
    best_of = {tid: (f[metric].max() if mode == "max" else f[metric].min()) for tid, f in curves.items()}
    board = board.copy()
    board["best_value"] = board["trial_id"].map(best_of).astype(float)
    board = board.sort_values("best_value", ascending=mode != "max", na_position="last").reset_index(drop=True)
    return board, curves, records.intervals


def pareto_front(board: pd.DataFrame, cost: str, mode: str) -> list[str]:
    """The trials (ids, cheapest first) that no other trial beats at the same or a lower `cost`:
    each one's best_value is strictly better than that of every cheaper trial."""
    rows = board.dropna(subset=["best_value", cost])
    sign = 1.0 if mode == "max" else -1.0
    rows = rows.assign(better=sign * rows["best_value"]).sort_values([cost, "better"], ascending=[True, False])
    front, best = [], -math.inf
    for trial_id, better in zip(rows["trial_id"], rows["better"]):
        if better > best:
            front.append(trial_id)
            best = better
    return front


def report_run(run: str | Path, out_dir: str | Path | None = None) -> Report:
    """Write the plots and index.html of a run (default: RUN/report)."""
    run = Path(run).expanduser().resolve()
    cfg = load_run_config(run)
    metric, mode = cfg.search.metric, cfg.search.mode
    board, curves, intervals = ranked_trials(run, cfg)

    out = Path(out_dir) if out_dir else run / "report"
    storage.require_writable(out, flag="--out" if out_dir else "")
    plots, sections, notes = [], [], []

    plot_progress(curves, board, metric, out / "progress.png")
    plots.append(out / "progress.png")
    stopped = int((board["outcome"] == "stopped_by_asha").sum())
    sections.append(("Every trial over time", "progress.png",
                     (f"{metric} at each validation against seconds since the search's first trial started; colour is how "
                     f"the trial ended, an x marks where ASHA stopped a trial ({stopped} of {len(board)} were stopped).")))

    progress = best_so_far(curves, metric, mode)
    plot_best_so_far(progress, metric, out / "best_so_far.png")
    plots.append(out / "best_so_far.png")
    sections.append(("Best so far against compute", "best_so_far.png",
                     (f"Every reported {metric} (grey) and the best so far (red), against the epochs all trials had trained "
                     f"by then: {progress['compute_epochs'].iloc[-1]:.1f} epochs in all.")))

    dims = searched_dimensions(cfg)
    importances, note = param_importances(board, dims, mode, seed=cfg.search.seed)
    if importances:
        plot_importances(importances, note, out / "importances.png")
        plots.append(out / "importances.png")
        sections.append(("Parameter importances", "importances.png",
                         (f"How much of the variation in each trial's best {metric} each parameter explains ({note}). "
                         "With few trials this is a rough guide, not a finding.")))
    else:
        notes.append(note)
        sections.append(("Parameter importances", None, f"No importances: {note}."))

    bound = "likely lower" if mode == "max" else "likely higher"  # a shorter run is (usually) a worse one
    for dim in dims:
        name = f"param_{_safe_name(dim.key)}.png"
        plot_parameter(board, dim, metric, out / name)
        plots.append(out / name)
        scale = "log scale; " if dim.kind in ("loguniform", "logint") else ""
        sections.append((f"{metric} against {dim.key}", name,
                         (f"Each trial's best {metric} against its {dim.key} ({scale}searched as {dim.kind}); "
                         f"trials ASHA stopped trained less, so their best is {bound} than a full run's.")))

    cost = "gpu_s" if (board["gpu_s"] > 0).any() else "cpu_s"
    front = pareto_front(board, cost, mode)
    if front:
        unit = "GPU" if cost == "gpu_s" else "CPU"
        plot_cost(board, cost, unit, front, metric, out / "cost.png")
        plots.append(out / "cost.png")
        sections.append((f"{metric} against cost", "cost.png",
                         (f"Each trial's best {metric} against the {unit}-seconds it used (its reserved {unit}s times its wall "
                          f"time, start-up included). The Pareto front, joined by a line, holds the trials that no trial beats "
                          f"at the same or a lower cost: {', '.join(front)}.")))
    else:
        sections.append((f"{metric} against cost", None, "No trial recorded its cost (runs before pairtune recorded it)."))

    (out / INDEX).write_text(_html_page(run, cfg, board, sections, intervals), encoding="utf-8")
    (out / "report.json").write_text(json.dumps({"importances": importances, "notes": notes}, indent=2), encoding="utf-8")
    return Report(out, out / INDEX, plots, notes, importances)
