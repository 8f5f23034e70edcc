"""Preparation done once per search, on the driver: read votes, split the fold, tokenise every text.

It takes the data section (DataConfig) and Encodings: every way a trial may turn a text into ids
(tokenizer per backbone, lowercasing, max lengths), which the search's space decides
(search/tune/prepare.py builds it from a config). The result travels to trials through the Ray object
store (tune.with_parameters), so no trial reads the CSV or runs the tokenizer again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from data import (
    DataError,
    FoldSplit,
    PairVotes,
    TokenizedTexts,
    make_fold,
    read_pairs,
    subsample_votes,
    tokenize_texts,
)
from data.config import DataConfig
from data.folds import cap_train_votes, same_input_groups
from data.loaders import FoldInputs, positions_among_texts
from data.scores import read_scored, scored_split, subsample_texts
from data.tokens import seen_keys

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Encodings:
    """Every way a trial may tokenise a text: a tokenizer per backbone name, the lowercasing options and
    the max lengths (texts are tokenised at the longest; trials truncate further themselves)."""
    tokenizers: dict[str, Any]
    lowercase: tuple[bool, ...]
    max_length: tuple[int, ...]

    @property
    def shortest(self) -> int:
        """The shortest max length a trial can use: texts the same up to it are one input to that trial."""
        return int(min(self.max_length))


@dataclass(frozen=True)
class PreparedData:
    votes: PairVotes
    split: FoldSplit
    tokens: dict[tuple[str, bool], TokenizedTexts]  # (backbone, lowercase) -> tokenised texts
    format: str = "pairs"  # data.format: scored formats' votes are derived pairs

    def fold_inputs(self, backbone: str, lowercase: bool) -> FoldInputs:
        tokens = self.tokens[(backbone, lowercase)]
        train, val = self.split.train_votes, self.split.val_votes
        v = self.votes
        if v.scores is None:
            return FoldInputs(tokens, v.less[train], v.more[train], v.less[val], v.more[val])
        train_texts = np.flatnonzero(v.text_fold != self.split.fold)
        return FoldInputs(tokens, v.less[train], v.more[train], v.less[val], v.more[val],
                          scores=v.scores.astype(np.float32), train_texts=train_texts)

    def validation_votes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(less, more, groups) of the validation votes: their texts as positions among the validation
        texts, in the order a trial scores them (FoldInputs.val_texts), and each vote's annotation
        group (None when the data has none). With a trial's kept scores, all a bootstrap needs."""
        val = self.split.val_votes
        _, less, more = positions_among_texts(self.votes.less[val], self.votes.more[val])
        groups = None if self.votes.groups is None else self.votes.groups[val]
        return less, more, groups

    def summary(self) -> dict:
        if self.votes.scores is not None:
            fold = self.votes.text_fold
            return {
                "source": self.votes.source,
                "format": self.format,
                "votes": self.votes.n_votes,
                "unique_texts": len(self.votes.texts),
                "identical_rows_dropped": 0,
                "fold": self.split.fold,
                "folds": self.split.n_folds,
                "split_method": self.split.method,
                "train_texts": int((fold != self.split.fold).sum()),
                "val_texts": int((fold == self.split.fold).sum()),
                "train_votes": len(self.split.train_votes),
                "val_votes": len(self.split.val_votes),
                "val_agreement_noise_95": round(agreement_noise(len(self.split.val_votes)), 4),
                "votes_dropped_crossing_folds": 0,
                "texts_merged_same_input": self.split.merged_texts,
            }
        return {
            "source": self.votes.source,
            "votes": self.votes.n_votes,
            "unique_texts": len(self.votes.texts),
            "identical_rows_dropped": self.votes.identical_dropped,
            "fold": self.split.fold,
            "folds": self.split.n_folds,
            "split_method": self.split.method,
            "train_votes": len(self.split.train_votes),
            "val_votes": len(self.split.val_votes),
            "val_agreement_noise_95": round(agreement_noise(len(self.split.val_votes)), 4),
            "votes_dropped_crossing_folds": self.split.dropped_votes,
            "texts_merged_same_input": self.split.merged_texts,
        }


FEW_VALIDATION_VOTES = 200  # below this, agreement is uncertain by more than about +-0.07 (95%)


def agreement_noise(n_votes: int) -> float:
    """How far an agreement measured on n validation votes may be from the model's true agreement: the
    half-width of a 95% interval at its widest (an agreement of 0.5), votes taken as independent
    (1.96 * sqrt(0.25 / n)). Repeated texts make votes dependent, so the truth can be wider."""
    return 1.96 * (0.25 / n_votes) ** 0.5 if n_votes > 0 else float("nan")


def load_split(d: DataConfig, enc: Encodings) -> tuple[PairVotes, FoldSplit]:
    """Votes and the configured fold; DataError when the fold leaves nothing to train or validate."""
    return split_votes(d, enc)[:2]


def tokenise(texts: list[str], enc: Encodings) -> dict[tuple[str, bool], TokenizedTexts]:
    """Every text once per (backbone, lowercase) a trial can use, at the longest max_length any trial
    can ask for; trials truncate further themselves."""
    max_length = int(max(enc.max_length))
    tokens = {}
    for backbone, tokenizer in enc.tokenizers.items():
        for lowercase in enc.lowercase:
            tokens[(backbone, lowercase)] = tokenize_texts(texts, tokenizer, max_length, lowercase)
    return tokens


def same_input(tokens: dict, shortest: int) -> np.ndarray:
    """Group of each text: texts that some trial's model would see as the same input (same ids after
    lowercasing and truncation at the shortest max_length) must share a fold."""
    return same_input_groups([seen_keys(t, shortest) for t in tokens.values()])


def split_votes(d: DataConfig, enc: Encodings) -> tuple[PairVotes, FoldSplit, dict]:
    """Votes, the configured fold and the tokenised texts (which decide which texts must share a fold);
    a warning when the fold validates on so few votes that its agreement says little."""
    votes, split, tokens = (load_pair_split if d.format == "pairs" else load_scored_split)(d, enc)
    n = len(split.val_votes)
    if n < FEW_VALIDATION_VOTES:
        log.warning("fold %d has only %d validation votes (under %d): its agreement is uncertain by about +-%.2f (95%%); "
                    "use more votes (data.max_votes, data.pairs) or fewer folds (data.folds)",
                    split.fold, n, FEW_VALIDATION_VOTES, agreement_noise(n))
    return votes, split, tokens


def load_pair_split(d: DataConfig, enc: Encodings) -> tuple[PairVotes, FoldSplit, dict]:
    """Pair votes: texts split into leak-free folds (data/folds.py)."""
    votes = read_pairs(d.pairs, d.less_column, d.more_column)
    votes = subsample_votes(votes, d.max_votes, d.split_seed)
    if len(votes.texts) < 2 * d.folds:
        raise DataError(f"{_too_few_for_folds(d, votes)}; lower data.folds or add votes")
    tokens = tokenise(votes.texts, enc)
    return votes, pair_fold(d, votes, tokens, enc.shortest), tokens


def _too_few_for_folds(d: DataConfig, votes: PairVotes) -> str:
    return f"{votes.source}: cannot make {d.folds} leak-free folds from {votes.n_votes} votes over {len(votes.texts)} texts"


def pair_fold(d: DataConfig, votes: PairVotes, tokens: dict, shortest: int) -> FoldSplit:
    """The configured leak-free fold of pair votes (texts the model sees identically, up to the
    `shortest` max length, share a fold), capped at data.max_train_votes; the one rule for the search,
    `pairtune train --folds` and the baseline."""
    too_few = _too_few_for_folds(d, votes)
    try:
        split = make_fold(votes, d.folds, d.fold, d.split_seed, d.split, groups=same_input(tokens, shortest))
    except ValueError as e:
        raise DataError(f"{too_few}: {e}") from None
    if len(split.val_votes) == 0 or len(split.train_votes) == 0:
        raise DataError(f"{too_few} ({split.describe()}); lower data.folds or add votes")
    return cap_train_votes(split, d.max_train_votes, d.split_seed)


def load_scored_split(d: DataConfig, enc: Encodings) -> tuple[PairVotes, FoldSplit, dict]:
    """Scored or labelled texts: texts split into folds first, then pairs derived inside each side."""
    scored = subsample_texts(read_scored(d), d.max_texts, d.split_seed)
    too_few = f"{scored.source}: cannot make {d.folds} folds from {len(scored.texts)} texts"
    if len(scored.texts) < 2 * d.folds:
        raise DataError(f"{too_few}; lower data.folds or add rows")
    tokens = tokenise(list(scored.texts), enc)
    try:
        votes, split = scored_split(scored, d, same_input(tokens, enc.shortest))
    except ValueError as e:
        raise DataError(f"{too_few}: {e}") from None
    for side, got in (("training", split.train_votes), ("validation", split.val_votes)):
        if len(got) == 0:
            raise DataError(f"{scored.source}: fold {d.fold} has no {side} pairs: its texts all share one score "
                            "(or differ by no more than data.min_score_gap)")
    return votes, cap_train_votes(split, d.max_train_votes, d.split_seed), tokens


def prepare_data(d: DataConfig, enc: Encodings) -> PreparedData:
    votes, split, tokens = split_votes(d, enc)
    prepared = PreparedData(votes, split, tokens, d.format)
    log.info("prepared %s", prepared.summary())
    return prepared
