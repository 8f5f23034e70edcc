"""Do the leaderboard's 95% intervals (model/intervals.py) cover what they claim, on real votes?

    python benchmarks/interval_coverage.py [--splits 100]

Fold 0 of ../shared/data/ruddit_pairs.csv as benchmarks/ruddit_minilm_30min.yaml splits it, scored by
the search's own TF-IDF + ridge baseline (a fixed scorer: what varies is only which votes are drawn).
The validation votes are split in two halves at random, `--splits` times, and each half's 95% interval
(resampling worker groups, texts with all their votes, or votes as if independent) is asked whether
it contains the other half's agreement. Two ways to halve:

- by worker group (the issue's check): the halves share texts whenever a text sits in tuples of both;
- by text: each text goes to one half and a vote is kept when both its texts are in the same half
  (about half the votes are dropped), so the halves share nothing and are independent.

A calibrated 95% interval of one half contains an independent half's value with probability
P(|Z| < 1.96 / sqrt(2)) = 0.834 (the difference of two equally noisy values has twice the variance):
well below 0.834 means the interval is too narrow, well above too wide. Halves that share texts are
correlated, so every unit covers more there.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bootstrap_speed import fold_scores  # noqa: E402

from model.intervals import agreement, bootstrap_agreement  # noqa: E402

CALIBRATED = math.erf(1.96 / 2)  # P(|Z| < 1.96 / sqrt(2)) = erf(1.96 / 2) = 0.834


def halves_by_group(rng, less, more, groups):
    names = np.unique(groups)
    first = set(rng.choice(names, size=len(names) // 2, replace=False).tolist())
    a = np.array([g in first for g in groups])
    return np.flatnonzero(a), np.flatnonzero(~a)


def halves_by_text(rng, less, more, groups):
    n = int(max(less.max(), more.max())) + 1
    side = rng.random(n) < 0.5
    return np.flatnonzero(side[less] & side[more]), np.flatnonzero(~side[less] & ~side[more])


def covers(scores, less, more, groups, mine, other, unit) -> bool:
    g = {"group": groups[mine], "text": None, "vote": np.arange(len(mine))}[unit]
    iv = bootstrap_agreement(scores[None], less[mine], more[mine], g)
    value = agreement(scores, less[other], more[other])
    return bool(iv.low[0] <= value <= iv.high[0])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=str(ROOT / "benchmarks" / "ruddit_minilm_30min.yaml"))
    p.add_argument("--splits", type=int, default=100)
    args = p.parse_args()
    start = time.perf_counter()
    less, more, groups, scores = fold_scores(Path(args.config))
    print(f"fold: {len(less)} validation votes, {len(scores)} texts, {len(np.unique(groups))} worker groups; "
          f"baseline agreement {agreement(scores, less, more):.4f}; {args.splits} random halvings each way")
    print(f"a calibrated 95% interval contains an independent half's value {CALIBRATED:.3f} of the time")
    for name, halve in (("by worker group", halves_by_group), ("by text (independent halves)", halves_by_text)):
        rng = np.random.default_rng(0)
        hits = {"group": [], "text": [], "vote": []}
        sizes = []
        for _ in range(args.splits):
            a, b = halve(rng, less, more, groups)
            sizes.append((len(a), len(b)))
            for unit in hits:
                hits[unit] += [covers(scores, less, more, groups, a, b, unit), covers(scores, less, more, groups, b, a, unit)]
        mean_a, mean_b = np.mean(sizes, axis=0)
        cells = ", ".join(f"{unit} {np.mean(h):.3f}" for unit, h in hits.items())
        print(f"halves {name} (about {mean_a:.0f} and {mean_b:.0f} votes): coverage resampling {cells}")
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
