"""How sure is a trial's validation agreement? A seeded 95% bootstrap interval on each trial's value
and a paired bootstrap against the best trial, from the scores each trial kept of its best validation.

Pure numpy (no torch): `export`, `status` and `report` read finished runs with it.

What is resampled is what is independent. Votes are not: an annotation group (Jigsaw's `worker`
column, Ruddit's 4-text tuple) casts several votes, and a text sits in many votes. With groups, each
resample draws whole groups with replacement; without, it draws texts with replacement and a vote
counts as often as both its texts were drawn (the product of their counts: Owen's pigeonhole
bootstrap for data crossed by two random factors, slightly conservative).

All trials are measured on the same resamples, so the difference between a trial and the best is
resampled too (a paired bootstrap): `p_ge_best` is the share of resamples in which the trial's
agreement is at least the best's, and a trial is tied with the best at 95% when that share is at
least 2.5% (the 95% interval of its difference to the best reaches 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

RESAMPLES = 1000
LEVEL = 0.95
SEED = 0
_CHUNK = 100  # resamples per block: (chunk, votes) weights stay small on big folds


def vote_hits(scores: np.ndarray, less: np.ndarray, more: np.ndarray) -> np.ndarray:
    """THE rule of pairwise agreement: a vote is reproduced when score[more] > score[less], strictly
    (ties are misses). scores: (..., N) per text; less, more: (V,) indices into it -> (..., V) bool."""
    return scores[..., more] > scores[..., less]


def agreement(scores: np.ndarray, less: np.ndarray, more: np.ndarray) -> float:
    """Share of votes reproduced (model/losses.py's pairwise_agreement counts with vote_hits too)."""
    if len(less) == 0:
        raise ValueError("no votes to compute agreement on")
    return float(vote_hits(np.asarray(scores), less, more).mean())


@dataclass
class Intervals:
    """Per trial (the rows of the scores given): its agreement, the interval, the paired comparison."""

    value: np.ndarray  # (T,) agreement on all validation votes
    low: np.ndarray  # (T,) the interval's ends
    high: np.ndarray
    p_ge_best: np.ndarray  # (T,) share of resamples where the trial is at least as good as the best
    tied: np.ndarray  # (T,) bool: p_ge_best >= (1 - level) / 2; the best itself included
    best: int  # row of the best trial
    unit: str  # what was resampled: "group" or "text"
    units: int  # how many of them
    resamples: int
    level: float
    seed: int

    def tied_with_best(self) -> list[int]:
        """Rows of the trials other than the best that are tied with it."""
        return [i for i in np.flatnonzero(self.tied).tolist() if i != self.best]


def _counts(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """(size, n) how often each of n units is drawn in each of `size` resamples of n draws."""
    draws = rng.integers(0, n, size=(size, n)) + n * np.arange(size)[:, None]
    return np.bincount(draws.ravel(), minlength=size * n).reshape(size, n).astype(np.float64)


def _resampled(rng, less, more, groups, texts, size) -> np.ndarray:
    """(size, units) how many times each unit counts in each resample: a group's votes, or a vote
    (the product of its two texts' counts) when texts (the votes' unique texts) are resampled."""
    if groups is not None:
        return _counts(rng, int(groups.max()) + 1, size)
    counts = np.zeros((size, int(texts.max()) + 1))
    counts[:, texts] = _counts(rng, len(texts), size)
    return counts[:, less] * counts[:, more]


def _per_group(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """(V, T) -> (G, T) sums over each group's votes: a resample then weighs G rows, not V."""
    out = np.zeros((int(groups.max()) + 1, values.shape[1]))
    np.add.at(out, groups, values)
    return out


def bootstrap_agreement(scores: np.ndarray, less: np.ndarray, more: np.ndarray, groups: np.ndarray | None = None,
                        best: int | None = None, resamples: int = RESAMPLES, level: float = LEVEL,
                        seed: int = SEED) -> Intervals:
    """Intervals for T trials' agreements on the same V votes.

    scores: (T, N) each trial's score of each validation text; less, more: (V,) indices into N;
    groups: (V,) each vote's annotation group (any integers), or None to resample texts; best: the
    row to compare with (default: the highest agreement, the first of equals). The resamples depend
    only on the votes, groups and seed, never on the trials: a trial's interval is the same in any
    company.
    """
    less, more = np.asarray(less), np.asarray(more)
    if len(less) == 0:
        raise ValueError("no votes to compute agreement on")
    scores = np.atleast_2d(np.asarray(scores))
    if groups is not None:
        _, groups = np.unique(np.asarray(groups), return_inverse=True)
    hits = vote_hits(scores, less, more).T.astype(np.float64)  # (V, T)
    value = hits.mean(0)
    best = int(np.argmax(value)) if best is None else best
    ahead = hits - hits[:, [best]]  # (V, T) +1 where the trial alone is right, -1 where the best alone is
    votes = np.ones((len(less), 1))
    if groups is not None:  # (G, T): each group's hits, votes and lead
        hits, ahead, votes = (_per_group(x, groups) for x in (hits, ahead, votes))
    texts = None if groups is not None else np.unique(np.concatenate([less, more]))  # the units, once
    rng = np.random.default_rng(seed)
    agree, diff = np.empty((resamples, len(value))), np.empty((resamples, len(value)))
    with threadpool_limits(1):  # small products: BLAS threads only contend (1-2.4 s instead of 0.1 s on a busy 2-core machine)
        _fill(rng, less, more, groups, texts, hits, ahead, votes, agree, diff)
    tail = (1 - level) / 2
    kept = ~np.isnan(agree[:, 0])
    low, high = np.quantile(agree[kept], [tail, 1 - tail], axis=0)
    p_ge_best = (diff[kept] >= 0).mean(0)
    units = int(groups.max()) + 1 if groups is not None else len(texts)
    return Intervals(value, low, high, p_ge_best, p_ge_best >= tail, best, "group" if groups is not None else "text",
                     units, resamples, level, seed)


def _fill(rng, less, more, groups, texts, hits, ahead, votes, agree, diff) -> None:
    """Each resample's agreement per trial (agree) and lead over the best (diff), in chunks."""
    resamples = len(agree)
    for start in range(0, resamples, _CHUNK):
        size = min(_CHUNK, resamples - start)
        w = _resampled(rng, less, more, groups, texts, size)  # (size, units) integer counts: the sums below are exact
        total = w @ votes
        total[total == 0] = np.nan  # a resample with no vote left (only possible on tiny folds)
        agree[start:start + size] = (w @ hits) / total
        diff[start:start + size] = w @ ahead
