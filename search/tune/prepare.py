"""A config's data preparation (data/prepare.py): the Encodings its search space allows, and the
config-shaped calls the search, its trials and the recipes make."""

from __future__ import annotations

from data import FoldSplit, PairVotes
from data.prepare import Encodings, PreparedData
from data.prepare import load_split as _load_split
from data.prepare import pair_fold as _pair_fold
from data.prepare import prepare_data as _prepare_data
from model.backbone import load_tokenizer
from search.config.parse import PairtuneConfig
from search.config.space import possible_values


def encodings(cfg: PairtuneConfig) -> Encodings:
    """Every tokenizer, lowercasing and max length a trial of cfg's search can use."""
    return Encodings(tokenizers={b: load_tokenizer(b) for b in possible_values(cfg, "model.backbone")},
                     lowercase=tuple(possible_values(cfg, "data.lowercase")),
                     max_length=tuple(int(n) for n in possible_values(cfg, "data.max_length")))


def prepare_data(cfg: PairtuneConfig) -> PreparedData:
    return _prepare_data(cfg.data, encodings(cfg))


def load_split(cfg: PairtuneConfig) -> tuple[PairVotes, FoldSplit]:
    return _load_split(cfg.data, encodings(cfg))


def pair_fold(cfg: PairtuneConfig, votes: PairVotes, tokens: dict) -> FoldSplit:
    """cfg's fold of already tokenised votes: needs only the shortest max length, no tokenizer."""
    return _pair_fold(cfg.data, votes, tokens, int(min(possible_values(cfg, "data.max_length"))))

