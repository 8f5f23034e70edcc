"""Every trial's 95% interval and its paired comparison with the best, for the leaderboard of `export`,
`status` and `report`: the bootstrap of model/intervals.py over the scores each trial kept of its best
validation (VAL_SCORES in its checkpoint) and the run's validation votes (VALIDATION_FILE). Nothing is
re-scored; no torch, Ray or Lightning.

Only for searches of val/agreement: another metric's best validation is kept too (its scores are
stored either way), but its interval is not computed yet, and the columns stay empty.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from model.intervals import LEVEL, RESAMPLES, SEED, bootstrap_agreement
from model.metrics import AGREEMENT
from search.runs.layout import best_scored_checkpoint, read_val_scores, read_validation

COLUMNS = ("ci95_low", "ci95_high", "p_ge_best", "tied_with_best")
UNIT_NAMES = {"group": "annotation groups (the worker column)", "text": "texts with all their votes"}


def add_intervals(board: pd.DataFrame, run: Path, trial_dirs: dict[str, str], metric: str) -> tuple[pd.DataFrame, dict]:
    """The board (best first) with COLUMNS, and what was computed (`intervals` of the summary): empty
    columns and a `note` when nothing could be (another metric, a run from before the validation votes
    were kept, no trial with kept scores yet). `trial_dirs`: trial id -> its directory in `run`."""
    board = board.copy()
    for c in COLUMNS:
        board[c] = pd.Series([math.nan] * len(board), dtype=float if c != "tied_with_best" else object)
    if metric != AGREEMENT:
        return board, {"note": f"intervals are computed for {AGREEMENT} searches only, not yet for {metric}"}
    votes = read_validation(run)
    if votes is None:
        return board, {"note": "this run kept no validation votes (a run from before intervals)"}
    less, more, groups = votes
    kept = {tid: scores for tid, (_, scores) in kept_scores(run, trial_dirs, board.trial_id, votes).items()}
    if not kept:
        return board, {"note": "no trial has kept the scores of a validation yet"}
    ids = list(kept)  # in board order: the first is the best trial that kept its scores
    iv = bootstrap_agreement(np.stack([kept[t] for t in ids]), less, more, groups, best=0)
    rows = board.trial_id.map({t: i for i, t in enumerate(ids)})
    has = rows.notna()
    at = rows[has].astype(int).to_numpy()
    board.loc[has, "ci95_low"] = iv.low[at]
    board.loc[has, "ci95_high"] = iv.high[at]
    board.loc[has, "p_ge_best"] = iv.p_ge_best[at]
    board.loc[has, "tied_with_best"] = iv.tied[at]
    info = {
        "best_trial": ids[0], "best_ci95": [float(iv.low[0]), float(iv.high[0])],
        "tied_with_best": [ids[i] for i in iv.tied_with_best()],
        "resampled": iv.unit, "units": iv.units, "resamples": RESAMPLES, "level": LEVEL, "seed": SEED,
        "trials_with_scores": len(ids),
    }
    return board, info


def kept_scores(run: Path, trial_dirs: dict[str, str], trial_ids, votes) -> dict[str, tuple]:
    """trial id -> (the checkpoint of its best validation, the scores it kept there), in the order of
    `trial_ids`, for the trials whose scores fit the run's validation votes (`votes`, read_validation's):
    one finite score for each validation text. What the intervals and `pairtune ensemble` both read."""
    less, more, _ = votes
    n_texts = int(max(less.max(), more.max())) + 1
    kept = {}
    for tid in trial_ids:
        checkpoint = best_scored_checkpoint(run / trial_dirs[tid]) if tid in trial_dirs else None
        if checkpoint is None:
            continue
        scores = read_val_scores(checkpoint)
        if len(scores) == n_texts and np.isfinite(scores).all():
            kept[tid] = (checkpoint, scores)
    return kept


def tied_line(info: dict) -> str | None:
    """'3 trials are tied with the best at 95% (paired bootstrap over 150 annotation groups): a, b, c'
    ('no other trial is tied ...' when none is)."""
    if "tied_with_best" not in info:
        return None
    tied = info["tied_with_best"]
    n = len(tied)
    count = f"{n} trial{'s are' if n != 1 else ' is'}" if n else "no other trial is"
    count += f" tied with the best ({info['best_trial']}) at {info['level']:.0%}"
    how = f"paired bootstrap over {info['units']} {UNIT_NAMES[info['resampled']]}"
    named = f": {', '.join(tied[:10])}" + (f" and {n - 10} more" if n > 10 else "") if tied else ""
    return f"{count} ({how}){named}"


def interval_text(info: dict) -> str | None:
    """'95% interval 0.741-0.803' of the best trial, or None."""
    if "best_ci95" not in info:
        return None
    low, high = info["best_ci95"]
    return f"{info['level']:.0%} interval {low:.4f}-{high:.4f}"
