"""The analytic stand-in trainable: a cheap learning curve that behaves like fine-tuning a ranker, and
a Ray Tune function trainable that reports it as pairtune's trial does (search/tune/trial.py: the searched
metric, the fractional EPOCH that ASHA and the budgets count in, `final` on the last validation).

The one place this curve lives: the search-machinery tests (tests/test_search_machinery.py) run
pairtune's real searcher, scheduler and budgets over it in seconds, and
benchmarks/search_efficiency.py compares search strategies on it. Imports no torch: a trial process
running it starts fast.
"""

from __future__ import annotations

import json
import math
import sys
import time
import zlib

import numpy as np

EPOCHS = 8
REPORT_AT = (1.0, 2.0, 4.0, 8.0)  # a validation at each of ASHA's rungs (grace 1, reduction factor 2)
METRIC, TIME_ATTR = "val/agreement", "epoch"  # pairtune's AGREEMENT and search.runs.layout.EPOCH, without importing torch
WALL = "time/wall_s"  # search.runs.layout.WALL
NOISE_SD = 0.006  # validation-set noise of one agreement measurement
SPACE = {
    "train.lr": {"loguniform": [1e-6, 1e-3]},
    "train.margin": {"uniform": [0.05, 1.0]},
    "train.batch_size": {"choice": [8, 16, 32, 64]},
    "model.dropout": {"uniform": [0.0, 0.5]},
    "train.warmup_ratio": {"uniform": [0.0, 0.3]},
}
# A config near the optimum and one whose lr is far too low (it learns slowly): at epoch 1 the first
# is far ahead of the second (about 0.76 against 0.59), well beyond the noise.
GOOD = {"train.lr": 10 ** -4.5, "train.margin": 0.35, "train.batch_size": 32, "model.dropout": 0.12,
        "train.warmup_ratio": 0.06}
SLOW = {**GOOD, "train.lr": 1e-6}


def curve_params(c: dict) -> dict:
    """Ceiling, speed and divergence of a config. The best lr grows with the batch size; a higher lr
    learns faster, and past the optimum to a lower ceiling, so neighbouring curves cross (a slightly
    too-high lr leads after one epoch, the optimum wins by the end); far too low an lr learns slowly;
    lr far above the optimum diverges (the model collapses to chance agreement, as a ranker whose loss
    blew up does) unless warmup tempers it; low dropout overfits late."""
    d = math.log10(c["train.lr"]) - (-4.5 + 0.25 * math.log2(c["train.batch_size"] / 32))
    ceiling = (
        0.80
        - (0.06 if d > 0 else 0.03) * d * d
        - 0.08 * (c["train.margin"] - 0.35) ** 2
        - 0.15 * (c["model.dropout"] - 0.12) ** 2
        - 0.25 * (c["train.warmup_ratio"] - 0.06) ** 2
        - 0.1 * max(d, 0.0) * abs(c["model.dropout"] - 0.12)  # dropout matters more at high lr
    )
    return {
        "ceiling": max(0.55, ceiling),
        "rate": 2.0 * 10 ** (0.4 * d) * (1 - 0.5 * c["train.warmup_ratio"]),
        "overfit": 0.006 * max(0.0, 0.15 - c["model.dropout"]) / 0.15,
        "diverges_at": 1.0 if d > 1.0 + 4 * c["train.warmup_ratio"] else math.inf,  # from then on: chance
    }


def curve(c: dict, t: float, p: dict | None = None) -> float:
    """Noise-free validation agreement of config c after t epochs (0.5 = chance)."""
    p = p or curve_params(c)
    return 0.5 + (p["ceiling"] - 0.5) * (1 - math.exp(-p["rate"] * t)) - p["overfit"] * max(0.0, t - 2.0)


def true_value(c: dict, report_at=REPORT_AT) -> float:
    """Best noise-free agreement over a full run: what training the config with checkpoint-on-best gives."""
    p = curve_params(c)
    if math.isfinite(p["diverges_at"]):
        return 0.5
    return max(curve(c, t, p) for t in report_at)


def observed(config: dict, noise_seed: int = 0, report_at=REPORT_AT) -> list[float]:
    """The values the trial reports at `report_at`: the curve plus noise seeded by the config and seed."""
    p = curve_params(config)
    key = json.dumps([noise_seed, sorted((k, round(float(v), 12)) for k, v in config.items())])
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    return [(0.5 if t >= p["diverges_at"] else curve(config, t, p)) + rng.normal(0.0, NOISE_SD) for t in report_at]


def validation_votes(seed: int = 0, n_texts: int = 200, n_groups: int = 150):
    """Made-up validation votes for stand-in trials that keep scores (analytic_trial's `votes`): 4-text
    best-worst tuples, 5 votes each, ordered by a hidden severity with noise. Returns a dict of
    less, more (positions among the n_texts validation texts), groups and severity."""
    rng = np.random.default_rng(seed)
    severity = rng.normal(size=n_texts)
    less, more, groups = [], [], []
    for g in range(n_groups):
        tup = rng.choice(n_texts, size=4, replace=False)
        order = tup[np.argsort(severity[tup] + 0.3 * rng.logistic(size=4))]
        for a, b in ((0, 3), (1, 3), (2, 3), (0, 1), (0, 2)):
            less.append(order[a]), more.append(order[b]), groups.append(g)
    return {"less": np.array(less), "more": np.array(more), "groups": np.array(groups), "severity": severity}


def scores_for(value: float, votes: dict, key: str) -> np.ndarray:
    """Scores of the validation texts from a model as good as `value` says: the severity plus noise that
    shrinks as value rises (seeded by `key`)."""
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    noise = 8.0 * math.exp(-12.0 * max(0.0, value - 0.5))
    return (votes["severity"] + noise * rng.normal(size=len(votes["severity"]))).astype(np.float32)


def _keep_best(scores: np.ndarray, value: float, report: dict) -> tuple:
    """What a trial's new best validation leaves, the stand-in's way: the scores through the helper the
    real trial uses (search/runs/layout.py), a metrics.json with the score Ray ranks checkpoints by."""
    import tempfile

    from ray import tune

    from search.runs.layout import CHECKPOINT_SCORE, write_val_scores

    d = tempfile.mkdtemp(prefix="standin-")
    write_val_scores(d, scores)
    with open(f"{d}/metrics.json", "w") as f:
        json.dump({**report, CHECKPOINT_SCORE: value}, f)
    return tune.Checkpoint.from_directory(d)


def _pickle_by_value() -> None:
    """Ray ships the trainable to its workers by reference to this module, which they cannot import
    (tests/ is on the driver's sys.path only, not theirs): ship the module's code by value instead."""
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])


_pickle_by_value()


class StandInError(RuntimeError):
    """What a stand-in trial told to fail raises."""


def analytic_trial(config: dict, noise_seed: int = 0, report_at=REPORT_AT, sleep_s: float = 0.0,
                   fail_if: dict | None = None, votes: dict | None = None, seconds_per_epoch=None) -> None:
    """The stand-in trainable: reports like pairtune's trial (metric, fractional epoch, final).

    `seconds_per_epoch(config)`: the trial also reports its wall time as a trial of that speed would
    (WALL = epochs x that; none is spent), for ASHA counting in seconds (search.time_attr: seconds).

    `report_at`: the epochs it validates at (the last one is final). `sleep_s`: seconds before each
    report (a trial that takes time, for time budgets). `fail_if` {key: threshold}: the trial raises
    StandInError after its first report when config[key] >= threshold for any key (an errored trial).
    `votes` (validation_votes()): each validation scores made-up texts (scores_for), reports their
    agreement as the metric, and a new best keeps its scores in its checkpoint as a real trial does.
    Unsearched keys default to GOOD's values."""
    from ray import tune  # nothing heavier: a trial process never imports torch here

    config = {**GOOD, **config}
    fails = any(float(config[k]) >= v for k, v in (fail_if or {}).items())
    best = -math.inf
    for i, (t, value) in enumerate(zip(report_at, observed(config, noise_seed, report_at))):
        if sleep_s:
            time.sleep(sleep_s)
        report = {METRIC: float(value), TIME_ATTR: float(t), "final": t == report_at[-1]}
        if seconds_per_epoch is not None:
            report[WALL] = float(t) * seconds_per_epoch(config)
        if votes is None:
            tune.report(report)
        else:  # the metric is the agreement of the scores kept, as in a real trial
            from model.intervals import agreement

            scores = scores_for(value, votes, json.dumps([noise_seed, t, sorted(config.items())], default=str))
            report[METRIC] = agreement(scores, votes["less"], votes["more"])
            is_best, best = report[METRIC] > best, max(best, report[METRIC])
            report["checkpoint_score"] = report[METRIC] if is_best else -1e12  # search.runs.layout.CHECKPOINT_SCORE
            tune.report(report, checkpoint=_keep_best(scores, report[METRIC], report) if is_best else None)
        if fails and i == 0:
            raise StandInError(f"stand-in trial told to fail ({fail_if})")
