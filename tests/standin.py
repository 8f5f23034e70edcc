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


def _pickle_by_value() -> None:
    """Ray ships the trainable to its workers by reference to this module, which they cannot import
    (tests/ is on the driver's sys.path only, not theirs): ship the module's code by value instead."""
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])


_pickle_by_value()


class StandInError(RuntimeError):
    """What a stand-in trial told to fail raises."""


def analytic_trial(config: dict, noise_seed: int = 0, report_at=REPORT_AT, sleep_s: float = 0.0,
                   fail_if: dict | None = None) -> None:
    """The stand-in trainable: reports like pairtune's trial (metric, fractional epoch, final).

    `report_at`: the epochs it validates at (the last one is final). `sleep_s`: seconds before each
    report (a trial that takes time, for time budgets). `fail_if` {key: threshold}: the trial raises
    StandInError after its first report when config[key] >= threshold for any key (an errored trial).
    Unsearched keys default to GOOD's values."""
    from ray import tune  # nothing heavier: a trial process never imports torch here

    config = {**GOOD, **config}
    fails = any(float(config[k]) >= v for k, v in (fail_if or {}).items())
    for i, (t, value) in enumerate(zip(report_at, observed(config, noise_seed, report_at))):
        if sleep_s:
            time.sleep(sleep_s)
        tune.report({METRIC: float(value), TIME_ATTR: float(t), "final": t == report_at[-1]})
        if fails and i == 0:
            raise StandInError(f"stand-in trial told to fail ({fail_if})")
