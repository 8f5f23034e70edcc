"""The report's plots (PNG, matplotlib's Agg backend: no display needed); search/runs/report.py decides
what goes in them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from search.config.space import Dimension

OUTCOME_STYLE = {  # outcome -> (colour, label)
    "finished": ("tab:green", "finished"),
    "stopped_by_asha": ("tab:orange", "stopped by ASHA"),
    "early_stopping": ("tab:blue", "early stopping"),
    "stopped_by_search_end": ("tab:purple", "stopped at search end"),
}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_progress(curves: dict[str, pd.DataFrame], board: pd.DataFrame, metric: str, path: Path) -> None:
    plt = _plt()
    outcome = dict(zip(board["trial_id"], board["outcome"]))
    fig, ax = plt.subplots(figsize=(10, 5))
    seen = set()
    for trial_id, frame in curves.items():
        colour, label = outcome_style(outcome.get(trial_id, "?"))
        ax.plot(frame["wall_s"], frame[metric], "-o", color=colour, alpha=0.75, markersize=3, linewidth=1.2,
                label=None if label in seen else label)
        seen.add(label)
        last = frame.iloc[-1]
        if outcome.get(trial_id) == "stopped_by_asha":
            ax.plot(last["wall_s"], last[metric], "x", color="black", markersize=9, markeredgewidth=2,
                    label=None if "ASHA stop" in seen else "ASHA stop")
            seen.add("ASHA stop")
        ax.annotate(trial_id, (last["wall_s"], last[metric]), textcoords="offset points", xytext=(4, 2), fontsize=7, alpha=0.7)
    ax.margins(x=0.08)  # room for the trial labels at the right
    ax.set_xlim(left=0)  # the gap before the first point is each trial's start-up
    ax.set_xlabel("wall time since the search started (s)")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} of every trial over time")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    _save(plt, fig, path)


def plot_best_so_far(progress: pd.DataFrame, metric: str, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 5))
    ax.scatter(progress["compute_epochs"], progress["value"], s=12, color="tab:gray", alpha=0.5, label="each result")
    ax.step(progress["compute_epochs"], progress["best"], where="post", color="tab:red", linewidth=2, label="best so far")
    ax.set_xlabel("compute spent: epochs trained, summed over all trials")
    ax.set_ylabel(metric)
    ax.set_title(f"best {metric} so far against compute")
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    _save(plt, fig, path)


def plot_importances(importances: dict[str, float], note: str, path: Path) -> None:
    plt = _plt()
    keys = list(importances)[::-1]  # most important on top
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.5 * max(1, len(keys))))
    ax.barh(keys, [importances[k] for k in keys], color="tab:blue")
    for i, k in enumerate(keys):
        ax.text(importances[k], i, f" {importances[k]:.2f}", va="center", fontsize=8)
    ax.set_xlim(0, max(1.0, max(importances.values(), default=0) * 1.15))
    ax.set_xlabel("importance (sums to 1)")
    ax.set_title("parameter importances", fontsize=11)
    fig.text(0.01, 0.01, note, fontsize=7, alpha=0.8)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_parameter(board: pd.DataFrame, dim: Dimension, metric: str, path: Path) -> None:
    plt = _plt()
    column = f"param:{dim.key}"
    rows = board.dropna(subset=["best_value"])
    fig, ax = plt.subplots(figsize=(8, 4.5))
    categorical = dim.kind == "choice"
    if categorical:
        labels = [str(c) for c in dim.choices]
        position = {label: i for i, label in enumerate(labels)}
        rng = np.random.default_rng(0)
        xs = np.array([position.get(str(v), np.nan) for v in rows[column]], dtype=float)
        xs = xs + rng.uniform(-0.12, 0.12, len(xs))  # spread equal choices apart
        ax.set_xticks(range(len(labels)), labels)
        ax.set_xlim(-0.5, len(labels) - 0.5)
    else:
        xs = rows[column].astype(float).to_numpy()
        if dim.kind in ("loguniform", "logint"):
            ax.set_xscale("log")
    seen = set()
    for x, (_, row) in zip(xs, rows.iterrows()):
        colour, label = outcome_style(row["outcome"])
        ax.scatter([x], [row["best_value"]], color=colour, s=36, alpha=0.85, edgecolors="black", linewidths=0.4,
                   label=None if label in seen else label)
        seen.add(label)
    ax.set_xlabel(dim.key + (" (log scale)" if dim.kind in ("loguniform", "logint") else ""))
    ax.set_ylabel(f"best {metric} of the trial")
    ax.set_title(f"{metric} against {dim.key}")
    ax.grid(alpha=0.3)
    if seen:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    _save(plt, fig, path)


def plot_cost(board: pd.DataFrame, cost: str, unit: str, front: list[str], metric: str, path: Path) -> None:
    plt = _plt()
    rows = board.dropna(subset=["best_value", cost])
    fig, ax = plt.subplots(figsize=(8, 4.5))
    seen = set()
    for _, row in rows.iterrows():
        colour, label = outcome_style(row["outcome"])
        ax.scatter([row[cost]], [row["best_value"]], color=colour, s=36, alpha=0.85, edgecolors="black", linewidths=0.4,
                   label=None if label in seen else label)
        seen.add(label)
    on_front = rows.set_index("trial_id").loc[front]
    ax.plot(on_front[cost], on_front["best_value"], "-", color="tab:red", linewidth=1.5, drawstyle="steps-post",
            label="Pareto front")
    ax.scatter(on_front[cost], on_front["best_value"], s=110, facecolors="none", edgecolors="tab:red", linewidths=1.5)
    for trial_id, row in on_front.iterrows():
        ax.annotate(trial_id, (row[cost], row["best_value"]), textcoords="offset points", xytext=(4, 2), fontsize=7)
    ax.set_xlabel(f"{unit}-seconds the trial used (reserved x wall time)")
    ax.set_ylabel(f"best {metric} of the trial")
    ax.set_title(f"{metric} against cost")
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    _save(plt, fig, path)


def _save(plt, fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def outcome_style(outcome: str) -> tuple[str, str]:
    return OUTCOME_STYLE.get(outcome, ("tab:gray", outcome))
