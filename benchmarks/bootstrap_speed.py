"""How fast, and how wide, are the leaderboard's intervals (model/intervals.py) on Ruddit's fold 0?

    python benchmarks/bootstrap_speed.py [--trials 100] [--reps 3]

Fold 0 of ../shared/data/ruddit_pairs.csv as benchmarks/ruddit_minilm_30min.yaml splits it (3,441
validation votes), scored by `--trials` made-up trials: the TF-IDF + ridge baseline's scores plus
noise of growing size (so the trials range from the baseline to much worse). Prints the bootstrap's
wall time (1,000 resamples, every trial's interval and its paired comparison with the best; the target
is <= 2 s for 100 trials), then the interval's width for the baseline's own scores resampling the
worker groups (Ruddit's 4-text tuples, what pairtune uses), texts with all their votes, and votes
as if independent.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model.intervals import bootstrap_agreement  # noqa: E402


def fold_scores(config: Path):
    """(less, more, groups, baseline scores of the validation texts) of the config's fold."""
    from data.loaders import positions_among_texts
    from model.baseline import tfidf_ridge_scores
    from search.config.load import load_config
    from search.tune.prepare import load_split

    votes, split = load_split(load_config(config, []))
    scores, _ = tfidf_ridge_scores(votes, split)  # the search's own baseline
    val_texts, less, more = positions_among_texts(votes.less[split.val_votes], votes.more[split.val_votes])
    return less, more, votes.groups[split.val_votes], scores[val_texts].astype(np.float32)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=str(ROOT / "benchmarks" / "ruddit_minilm_30min.yaml"))
    p.add_argument("--trials", type=int, default=100)
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args()
    less, more, groups, base = fold_scores(Path(args.config))
    rng = np.random.default_rng(0)
    spread = base.std() * np.linspace(0.0, 1.0, args.trials)[:, None]
    trials = (base[None] + spread * rng.normal(size=(args.trials, len(base)))).astype(np.float32)
    print(f"fold: {len(less)} validation votes, {len(base)} texts, {len(np.unique(groups))} worker groups; {args.trials} trials")
    times = []
    for _ in range(args.reps):
        start = time.perf_counter()
        iv = bootstrap_agreement(trials, less, more, groups)
        times.append(time.perf_counter() - start)
    print(f"bootstrap of {args.trials} trials, {iv.resamples} resamples: "
          f"{', '.join(f'{t:.3f}' for t in times)} s (median {np.median(times):.3f} s; target <= 2 s)")
    print(f"trials tied with the best at 95%: {len(iv.tied_with_best())} of {args.trials - 1}")
    for name, g in (("worker groups", groups), ("texts with all their votes", None), ("votes as if independent", np.arange(len(less)))):
        one = bootstrap_agreement(base[None], less, more, g)
        print(f"baseline {one.value[0]:.4f}: 95% interval {one.low[0]:.4f}-{one.high[0]:.4f} "
              f"(width {one.high[0] - one.low[0]:.4f}) resampling {one.units} {name}")


if __name__ == "__main__":
    main()
