"""Scored texts (`text,score`) and multi-label rows (Jigsaw classification), turned into pair votes.

Both formats become one table of unique texts with a score each (a text given several times gets
the mean of its scores). Folds are made over texts first (by group when `data.group_column` is set),
and training and validation pairs are then derived inside each side separately, so no pair crosses
folds and nothing leaks or is dropped. The derived pairs fill the same `PairVotes` the pair-vote
format uses, so loaders, trainer and search need no change; the scores travel along for pointwise
losses (`train.loss: mse`) and for Pearson and Spearman on the validation texts.

Derivation: for each text, up to `pairs_per_text` partners are drawn (seeded) from the texts of the
same side whose score differs by more than `min_score_gap`; equal scores never make a pair. Each
unordered pair is kept once, ordered low score -> high score.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from data.config import DataConfig, template_fields
from data.folds import FoldSplit, _folds_by_component, connected_components, merged_texts
from data.pairs import (
    DataError,
    PairVotes,
    _check_columns,
    _read_frame,
    read_pairs,
    resolve_pairs_path,
    row_lines,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoredTexts:
    """Unique texts with a score each; groups[i] is text i's group label (or None: no grouping)."""

    texts: list[str]
    scores: np.ndarray
    groups: np.ndarray | None
    source: str
    rows: int


def build_texts(frame: pd.DataFrame, path, cfg: DataConfig) -> np.ndarray:
    """The model's text of every row: the text column, or the template filled from several columns."""
    if not cfg.template:
        _check_columns(frame, path, {"text": cfg.text_column})
        return frame[cfg.text_column].to_numpy(dtype=object)
    fields = template_fields(cfg.template)
    have = [str(c) for c in frame.columns]
    missing = [f for f in dict.fromkeys(fields) if f not in have]
    if missing:
        raise DataError(f"{path}: data.template: column(s) {missing} not in the file; columns are {have}")
    columns = {f: frame[f].to_numpy(dtype=object) for f in dict.fromkeys(fields)}
    return np.array([cfg.template.format(**{f: columns[f][i] for f in columns}) for i in range(len(frame))], dtype=object)


def _numbers(frame: pd.DataFrame, path, column: str, key: str, problems: list[str]) -> np.ndarray:
    """The column as numbers; a line in `problems` for each row that is not one."""
    values = pd.to_numeric(frame[column].str.strip(), errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(values))
    problems += row_lines(path, bad, lambda i: f"column '{column}' ({key}) must be a number, got {frame[column].iloc[i]!r}")
    return values


def data_problems(cfg: DataConfig) -> list[str]:
    """Problems with the data file that `cfg` names (all of them, one line each), read as a search
    would read it; used to report them together with problems elsewhere in the config."""
    try:
        if cfg.format == "pairs":
            read_pairs(cfg.pairs, cfg.less_column, cfg.more_column)
        else:
            read_scored(cfg)
    except DataError as e:
        return str(e).splitlines()
    return []


def read_scored(cfg: DataConfig) -> ScoredTexts:
    """Read a `scores` or `labels` CSV into unique texts with scores. Raises DataError naming the
    file, row and column of any problem."""
    path = resolve_pairs_path(cfg.pairs)
    frame = _read_frame(path)
    texts = build_texts(frame, path, cfg)
    problems: list[str] = []  # every bad row, reported together
    if cfg.format == "scores":
        _check_columns(frame, path, {"score": cfg.score_column})
        scores = _numbers(frame, path, cfg.score_column, "data.score_column", problems)
    else:
        have = [str(c) for c in frame.columns]
        missing = [c for c in cfg.label_weights if c not in have]
        if missing:
            raise DataError(f"{path}: missing column(s) {missing} (data.label_weights); columns are {have}")
        scores = np.zeros(len(frame))
        for column, weight in cfg.label_weights.items():
            scores += float(weight) * _numbers(frame, path, column, f"data.label_weights.{column}", problems)
    if len(frame) == 0:
        raise DataError(f"{path}: header only, no rows")
    empty = np.flatnonzero([not str(t).strip() for t in texts])
    what = "data.template" if cfg.template else f"column '{cfg.text_column}'"
    problems += row_lines(path, empty, lambda i: f"empty text ({what})")
    if problems:
        raise DataError("\n".join(problems))
    groups = None
    if cfg.group_column:
        _check_columns(frame, path, {"group": cfg.group_column})
        groups = frame[cfg.group_column].to_numpy(dtype=object)
    codes, uniques = pd.factorize(texts)
    n = len(uniques)
    counts = np.bincount(codes, minlength=n)
    mean = np.bincount(codes, weights=scores, minlength=n) / counts
    if (counts > 1).any():
        log.info("%s: %d texts appear on several rows; each gets the mean of its scores", path, int((counts > 1).sum()))
    text_groups = None
    if groups is not None:
        first = np.full(n, -1)
        first[codes[::-1]] = np.arange(len(codes))[::-1]  # each text's first row
        text_groups = groups[first]
    if len(np.unique(mean)) < 2:
        raise DataError(f"{path}: every text has the same score ({mean[0]:g}); no pairs can be derived")
    return ScoredTexts([str(t) for t in uniques], mean, text_groups, str(path), len(frame))


def subsample_texts(data: ScoredTexts, max_texts: int | None, seed: int) -> ScoredTexts:
    if max_texts is None or max_texts >= len(data.texts):
        return data
    keep = np.sort(np.random.default_rng(seed).choice(len(data.texts), size=max_texts, replace=False))
    return ScoredTexts(
        [data.texts[i] for i in keep], data.scores[keep], None if data.groups is None else data.groups[keep],
        data.source, data.rows,
    )


def text_folds(data: ScoredTexts, k: int, seed: int, same: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """Fold of every text: balanced random, or whole groups packed into folds (largest first). `same`
    (data.folds.same_input_groups) also keeps texts the model sees identically in one fold."""
    rng = np.random.default_rng(seed)
    n = len(data.texts)
    merging = merged_texts(same) > 0
    if data.groups is None and not merging:
        return rng.permutation(np.arange(n) % k), "texts"
    codes = same if data.groups is None else pd.factorize(data.groups)[0]
    if merging and data.groups is not None:  # a group_column group and same-input texts both stay whole
        g = int(codes.max()) + 1
        ends = np.concatenate([n + codes, n + g + same])  # text i joins its group node and its same-input node
        codes = np.unique(connected_components(n + g + int(same.max()) + 1, np.tile(np.arange(n), 2), ends)[:n],
                          return_inverse=True)[1]
    uniques = np.unique(codes)
    if len(uniques) < k:
        where = "in data.group_column" if data.groups is not None else "of distinct texts (as the model sees them)"
        raise ValueError(f"only {len(uniques)} groups {where} for {k} folds")
    # the same greedy packing as vote-graph components: largest groups first, into the lightest fold
    return _folds_by_component(codes, np.bincount(codes, minlength=len(uniques)), k, rng), "groups" if data.groups is not None else "texts"


def derive_pairs(members: np.ndarray, scores: np.ndarray, per_text: int, min_gap: float, seed) -> tuple[np.ndarray, np.ndarray]:
    """(less, more) pairs among `members` (indices into scores): each member draws up to per_text
    partners whose score differs by more than min_gap. Deterministic given the seed."""
    rng = np.random.default_rng(seed)
    order = members[np.argsort(scores[members], kind="stable")]
    s = scores[order]
    # Partners of a text with score x are the sorted texts below x - gap and above x + gap.
    below = np.searchsorted(s, s - min_gap, side="left")  # count with score < x - gap
    above = np.searchsorted(s, s + min_gap, side="right")  # first index with score > x + gap
    pairs = set()
    m = len(order)
    for i in range(m):
        n_valid = int(below[i] + (m - above[i]))
        if n_valid == 0:
            continue
        pick = rng.choice(n_valid, size=min(per_text, n_valid), replace=False)
        for p in pick.tolist():
            j = p if p < below[i] else above[i] + (p - below[i])
            a, b = order[i], order[j]
            pairs.add((a, b) if scores[a] < scores[b] else (b, a))
    if not pairs:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    arr = np.array(sorted(pairs), dtype=np.int64)
    return arr[:, 0], arr[:, 1]


def scored_split(data: ScoredTexts, cfg: DataConfig, same: np.ndarray | None = None) -> tuple[PairVotes, FoldSplit]:
    """The fold's derived training and validation pairs, over all texts, as PairVotes + FoldSplit.
    `same`: see text_folds."""
    fold_of, method = text_folds(data, cfg.folds, cfg.split_seed, same)
    sides = []
    for name, members in (("train", np.flatnonzero(fold_of != cfg.fold)), ("val", np.flatnonzero(fold_of == cfg.fold))):
        seed = [cfg.pair_seed, cfg.fold, 0 if name == "train" else 1]
        sides.append(derive_pairs(members, data.scores, cfg.pairs_per_text, cfg.min_score_gap, seed))
    (tl, tm), (vl, vm) = sides
    votes = PairVotes(
        texts=data.texts, less=np.concatenate([tl, vl]), more=np.concatenate([tm, vm]), source=data.source,
        scores=data.scores, text_fold=fold_of,
    )
    split = FoldSplit(
        cfg.fold, cfg.folds, method, train_votes=np.arange(len(tl)), val_votes=np.arange(len(tl), len(tl) + len(vl)),
        dropped_votes=0, merged_texts=merged_texts(same),
    )
    log.info("%s: %d texts, %s split; derived %d training and %d validation pairs", data.source, len(data.texts),
             method, len(tl), len(vl))
    return votes, split
