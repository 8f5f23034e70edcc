"""Leak-free K-fold splits of pair votes.

A fold is leak-free when no text appears on both sides: every vote used for validation has both of
its texts in the validation fold, every training vote has both texts outside it. Texts are assigned
to folds, never votes:

- `components`: when the vote graph falls apart into many small connected components, whole
  components go to folds (nothing is dropped).
- `texts`: when the graph is dense (one giant component, as in Ruddit), texts go to folds and the
  votes that cross between the validation fold and the rest are dropped. A few passes of greedy
  refinement move texts towards the fold that holds most of their neighbours, which keeps far more
  votes than a random assignment while the fold sizes stay balanced.

Everything is deterministic given the seed.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import numpy as np

from data.pairs import PairVotes

log = logging.getLogger(__name__)

SPLIT_METHODS = ("auto", "components", "texts")


@dataclass(frozen=True)
class FoldSplit:
    """One fold of a K-fold split. Arrays index into the votes (train_votes, val_votes)."""

    fold: int
    n_folds: int
    method: str
    train_votes: np.ndarray
    val_votes: np.ndarray
    dropped_votes: int
    merged_texts: int = 0  # texts kept in one fold with another text the model sees identically

    def describe(self) -> str:
        total = len(self.train_votes) + len(self.val_votes) + self.dropped_votes
        merged = f"; {self.merged_texts} texts kept with a text the model sees identically" if self.merged_texts else ""
        return (
            f"fold {self.fold}/{self.n_folds} ({self.method}): {len(self.train_votes)} train votes, "
            f"{len(self.val_votes)} validation votes, {self.dropped_votes} of {total} dropped "
            f"({self.dropped_votes / max(total, 1):.1%}) because they cross folds{merged}"
        )


def merged_texts(groups: np.ndarray | None) -> int:
    """How many texts a grouping (same_input_groups) merged into another text's group: N - G."""
    return 0 if groups is None else len(groups) - (int(groups.max(initial=-1)) + 1)


def same_input_groups(keys_per_view: list[list[bytes]]) -> np.ndarray:
    """Group label (0..G-1) of each text: texts that any view (tokenizer, lowercasing, truncation)
    turns into the same model input share a group, so they always land in the same fold."""
    n = len(keys_per_view[0]) if keys_per_view else 0
    a, b = [], []
    for keys in keys_per_view:
        first: dict[bytes, int] = {}
        for i, key in enumerate(keys):
            j = first.setdefault(key, i)
            if j != i:
                a.append(j)
                b.append(i)
    groups = connected_components(n, np.array(a, dtype=np.int64), np.array(b, dtype=np.int64))
    return groups


def connected_components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Component label (0..C-1) of each of n nodes joined by edges (a[i], b[i]). Union-find."""
    parent = np.arange(n)

    def find(x: int) -> int:
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    for u, v in zip(a.tolist(), b.tolist()):
        ru, rv = find(u), find(v)
        if ru != rv:
            parent[max(ru, rv)] = min(ru, rv)
    roots = np.array([find(i) for i in range(n)])
    return np.unique(roots, return_inverse=True)[1]


def _folds_by_component(comp: np.ndarray, votes_per_comp: np.ndarray, k: int, rng) -> np.ndarray:
    """Greedy bin packing: largest components first, each into the fold with fewest votes."""
    order = rng.permutation(len(votes_per_comp))
    order = order[np.argsort(-votes_per_comp[order], kind="stable")]
    load = np.zeros(k)
    comp_fold = np.empty(len(votes_per_comp), dtype=np.int64)
    for c in order:
        f = int(np.argmin(load))
        comp_fold[c] = f
        load[f] += votes_per_comp[c]
    return comp_fold[comp]


def _folds_by_text(n: int, a: np.ndarray, b: np.ndarray, k: int, rng, passes: int) -> np.ndarray:
    """Balanced random assignment of texts to folds, refined to keep neighbouring texts together."""
    fold = rng.permutation(np.arange(n) % k)
    # Neighbour lists with multiplicity (repeated votes pull harder), in CSR form.
    src = np.concatenate([a, b])
    dst = np.concatenate([b, a])
    order = np.argsort(src, kind="stable")
    dst = dst[order]
    starts = np.searchsorted(src[order], np.arange(n + 1))
    size = np.bincount(fold, minlength=k)
    cap = int(np.ceil(n / k * 1.03))  # fold sizes stay within 3% of equal
    floor = int(np.floor(n / k * 0.97))
    for _ in range(passes):
        moved = 0
        for t in rng.permutation(n).tolist():
            neigh = dst[starts[t] : starts[t + 1]]
            if len(neigh) == 0:
                continue
            counts = np.bincount(fold[neigh], minlength=k)
            cur = fold[t]
            counts[size >= cap] = -1  # full folds cannot take more
            best = int(np.argmax(counts))
            if best != cur and counts[best] > counts[cur] and size[cur] > floor:
                size[cur] -= 1
                size[best] += 1
                fold[t] = best
                moved += 1
        if moved == 0:
            break
    return fold


def assign_folds(votes: PairVotes, k: int, seed: int, method: str = "auto", passes: int = 8,
                 groups: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """Fold (0..k-1) of every text, and the method used. `groups` (see same_input_groups) keeps the
    texts of a group together: the split is made over groups, each one a node of the vote graph."""
    if method not in SPLIT_METHODS:
        raise ValueError(f"unknown split method {method!r}; expected one of {SPLIT_METHODS}")
    if merged_texts(groups):
        merged = dataclasses.replace(votes, texts=[""] * (int(groups.max()) + 1), less=groups[votes.less], more=groups[votes.more])
        group_fold, used = assign_folds(merged, k, seed, method, passes)
        return group_fold[groups], used
    n = len(votes.texts)
    rng = np.random.default_rng(seed)
    comp = connected_components(n, votes.less, votes.more)
    votes_per_comp = np.bincount(comp[votes.less], minlength=comp.max() + 1)
    # Components can be balanced when none is bigger than a fold's share of votes.
    if method == "components" or (method == "auto" and votes_per_comp.max() <= votes.n_votes / k):
        if comp.max() + 1 < k:
            raise ValueError(f"only {comp.max() + 1} connected components for {k} folds")
        return _folds_by_component(comp, votes_per_comp, k, rng), "components"
    return _folds_by_text(n, votes.less, votes.more, k, rng, passes), "texts"


def cap_train_votes(split: FoldSplit, max_train_votes: int | None, seed: int) -> FoldSplit:
    """The split with a seeded random subset of its training votes (validation untouched)."""
    if max_train_votes is None or max_train_votes >= len(split.train_votes):
        return split
    rng = np.random.default_rng([seed, split.fold])
    keep = np.sort(rng.choice(split.train_votes, size=max_train_votes, replace=False))
    log.info("training on %d of the fold's %d training votes (data.max_train_votes)", max_train_votes, len(split.train_votes))
    return dataclasses.replace(split, train_votes=keep)


def make_fold(votes: PairVotes, k: int, fold: int, seed: int, method: str = "auto",
              groups: np.ndarray | None = None) -> FoldSplit:
    """Train/validation votes of one fold; votes with one text on each side are dropped. Texts of one
    `groups` label (the same model input, see same_input_groups) share a fold."""
    if not 0 <= fold < k:
        raise ValueError(f"fold {fold} out of range for {k} folds")
    text_fold, used = assign_folds(votes, k, seed, method, groups=groups)
    in_val_less = text_fold[votes.less] == fold
    in_val_more = text_fold[votes.more] == fold
    val = np.flatnonzero(in_val_less & in_val_more)
    train = np.flatnonzero(~in_val_less & ~in_val_more)
    split = FoldSplit(fold, k, used, train, val, votes.n_votes - len(train) - len(val), merged_texts(groups))
    log.info("%s", split.describe())
    return split
