"""`pairtune ensemble RUN --out DIR`: a rank-average ensemble of a search's trials, chosen from the
scores each trial kept of its best validation (VAL_SCORES in its checkpoint), so nothing is re-scored
to choose. Two ways to choose:

- top K: the K trials with the best values (the leaderboard's order);
- greedy: forward selection with replacement (Caruana et al., 2004): start from nothing, add at each
  step the trial whose addition gives the highest validation agreement of the rank average (a trial
  may be added again, which weighs it more), for `steps` steps, and keep the best prefix.

The ensemble is written in the fold-ensemble layout `pairtune predict` reads (fold_K/ self-contained
model directories and ensemble.json), combined by the same rank average predict uses. Its validation
agreement is reported with its 95% interval, and it is optimistic: the members were chosen on that
same fold.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from model.checkpoint import ENSEMBLE, FOLD_DIR, METRICS
from model.intervals import agreement, bootstrap_agreement
from model.metrics import AGREEMENT
from search.config.parse import ConfigError
from search.recipes.predict import rank_average
from search.runs import storage
from search.runs.intervals import kept_scores
from search.runs.layout import load_run_config, read_validation, write_val_scores

GREEDY_STEPS = 10
OPTIMISTIC = ("the members were chosen on this same validation fold, so this agreement is optimistic; "
              "retrain them on all votes (README, 'pairtune ensemble') and judge on votes none of them saw")


def candidates(run: Path) -> tuple[list[dict], tuple]:
    """The trials that kept the scores of their best validation, best first, each {trial_id, value,
    checkpoint, scores}, and the run's validation votes (less, more, groups)."""
    from search.runs.export import leaderboard

    cfg = load_run_config(run)
    if cfg.search.metric != AGREEMENT:
        raise ConfigError([f"{run}: searched {cfg.search.metric}; ensembles are chosen by {AGREEMENT} (the pair votes' "
                           "agreement), and this run's kept scores are its best validations by another metric"])
    votes = read_validation(run)
    if votes is None:
        raise ConfigError([f"{run}: no validation votes kept (a run from before pairtune kept them), so no ensemble "
                           "can be chosen without re-scoring"])
    board, records = leaderboard(run, cfg)
    kept = kept_scores(run, {t.trial_id: t.dirname for t in records.trials}, board.trial_id, votes)
    found = [{"trial_id": tid, "value": agreement(scores, votes[0], votes[1]), "checkpoint": Path(checkpoint),
              "scores": scores} for tid, (checkpoint, scores) in kept.items()]
    if not found:
        raise ConfigError([f"{run}: no trial has kept the scores of a validation yet"])
    return found, votes


def choose_top(found: list[dict], k: int) -> list[int]:
    if k < 1:
        raise ConfigError([f"--top: must be at least 1, got {k}"])
    if k > len(found):
        raise ConfigError([f"--top {k}: only {len(found)} trial(s) kept the scores of a validation"])
    return list(range(k))


def choose_greedy(found: list[dict], less, more, steps: int = GREEDY_STEPS) -> list[int]:
    """Caruana's forward selection with replacement; the prefix with the best agreement (the shortest
    of equals). Ties between candidates go to the better single trial (the leaderboard's order)."""
    if steps < 1:
        raise ConfigError([f"--steps: must be at least 1, got {steps}"])
    chosen, history = [], []
    for _ in range(steps):
        values = [agreement(rank_average([found[i]["scores"] for i in chosen + [c]]), less, more)
                  for c in range(len(found))]
        best = int(np.argmax(values))  # the first of equals
        chosen.append(best)
        history.append(values[best])
    keep = int(np.argmax(history)) + 1
    return chosen[:keep]


def build_ensemble(run: str | Path, out: str | Path, top: int | None = None, steps: int | None = None) -> dict:
    """Choose members (top K, else greedy) and write them to `out` as a fold ensemble."""
    start = time.perf_counter()
    steps = GREEDY_STEPS if steps is None else steps
    if storage.is_uri(str(run)):
        raise ConfigError([f"{run}: ensemble reads a local run directory; copy the run from storage first "
                           "(e.g. `aws s3 sync` or `gsutil rsync`)"])
    run = Path(run).expanduser().resolve()
    out = Path(out).expanduser().resolve()
    if out.is_dir() and any(out.iterdir()):
        raise ConfigError([f"--out {out}: exists and is not empty; name a new directory"])
    found, (less, more, groups) = candidates(run)
    storage.require_writable(out, keep=False)  # before any member's model is loaded
    picked = choose_top(found, top) if top is not None else choose_greedy(found, less, more, steps)
    scores = rank_average([found[i]["scores"] for i in picked])
    interval = bootstrap_agreement(scores[None, :], less, more, groups)
    best = found[0]
    summary = {
        "method": f"top {top}" if top is not None else f"greedy forward selection with replacement, {steps} steps",
        "run": str(run),
        "members": [found[i]["trial_id"] for i in picked],
        "validation_votes": len(less),
        "validation_agreement": float(interval.value[0]),
        "ci95": [float(interval.low[0]), float(interval.high[0])],
        "resampled": interval.unit,
        "best_single": {"trial_id": best["trial_id"], "validation_agreement": float(best["value"])},
        "note": OPTIMISTIC,
    }
    _write(out, [found[i] for i in picked], summary)
    summary["out"] = str(out)
    summary["seconds"] = round(time.perf_counter() - start, 2)
    return summary


def _write(out: Path, members: list[dict], summary: dict) -> None:
    """Each member as a self-contained model directory (weights, config, its encoder config and
    tokenizer), then ensemble.json, last, as `pairtune train --folds` does: predict refuses a
    directory without it."""
    from model.checkpoint import load_checkpoint, load_tokenizer_for, save_checkpoint

    folds = {}
    for k, member in enumerate(members):
        module, config = load_checkpoint(member["checkpoint"])
        metrics = json.loads((member["checkpoint"] / METRICS).read_text(encoding="utf-8"))
        metrics["trial_id"] = member["trial_id"]
        directory = save_checkpoint(out / FOLD_DIR.format(k), module, config, metrics,
                                    load_tokenizer_for(member["checkpoint"], config))
        write_val_scores(directory, member["scores"])
        folds[str(k)] = {"trial_id": member["trial_id"], AGREEMENT: float(member["value"]),
                         "from": str(member["checkpoint"])}
    (out / ENSEMBLE).write_text(json.dumps({"folds": folds, "ensemble": summary}, indent=2), encoding="utf-8")
