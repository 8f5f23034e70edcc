"""`pairtune status RUN`: a live leaderboard of a search, read from its storage path.

Works from any machine that can read the run (a laptop with S3 credentials, the head node, a shared
disk): it needs no connection to the Ray cluster. While a search runs, Ray syncs trial results and
its experiment state to shared storage every `SYNC_PERIOD_S` seconds (search/runs/layout.py); local runs are current.
"""

from __future__ import annotations

import time

import pandas as pd

from model.metrics import AGREEMENT
from search.runs import storage
from search.runs.intervals import interval_text, tied_line
from search.runs.layout import load_run_config, require_run


def snapshot(run) -> tuple[pd.DataFrame, str]:
    """The leaderboard (best first) and a one-line summary of where the search stands."""
    from search.runs.export import leaderboard, metric_column

    run = storage.location(run)
    with storage.local_view(run) as local:
        base = load_run_config(local)
        if not storage.has_experiment(local):
            return pd.DataFrame(), f"{run}: no trial has started yet"
        # A damaged trial record is shown as such (outcome "damaged", the file named), not refused.
        board, records = leaderboard(local, base, strict=False, shown=run if storage.is_uri(run) else None)
    counts = board["outcome"].value_counts().to_dict() if len(board) else {}
    parts = [f"{n} {k}" for k, n in sorted(counts.items())]
    metric = base.search.metric  # the board is ranked by it
    key, label = ("best_agreement", "agreement") if metric == AGREEMENT else (metric_column(metric), metric)
    scored = board.dropna(subset=[key]) if len(board) else board
    best = f"; best {label} {scored[key].iloc[0]:.4f} (trial {scored.trial_id.iloc[0]})" if len(scored) else ""
    interval = interval_text(records.intervals)
    if interval and len(scored) and records.intervals["best_trial"] == scored.trial_id.iloc[0]:
        best = f"{best[:-1]}, {interval})"
    line = f"{run}: {len(board)} of {base.search.num_samples} trials ({', '.join(parts) or 'none yet'}){best}"
    tied = tied_line(records.intervals)
    return board, line + (f"\n{tied}" if tied else "")


def render(board: pd.DataFrame, line: str, limit: int = 30) -> str:
    if not len(board):
        return line
    cols = [c for c in board.columns if c != "error"]
    table = board[cols].head(limit).to_string(index=False, float_format=lambda x: f"{x:.4g}")
    errors = [f"  error {r.trial_id}: {r.error}" for r in board.itertuples() if getattr(r, "error", "")]
    return "\n".join([line, "", table, *errors[:10]])


def finished(board: pd.DataFrame) -> bool:
    return bool(len(board)) and not board["outcome"].isin(["running", "pending", "paused"]).any()


def watch(run, every_s: float | None, out=print) -> pd.DataFrame:
    """Print the leaderboard once, or every `every_s` seconds until no trial is pending or running."""
    require_run(storage.location(run))
    while True:
        board, line = snapshot(run)
        out(time.strftime("%H:%M:%S ") + render(board, line))
        if not every_s or finished(board):
            return board
        time.sleep(every_s)
