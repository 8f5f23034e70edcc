"""Pair-vote data: reading CSVs, leak-free folds, tokenising each unique text once."""

from data.config import DataConfig
from data.folds import FoldSplit, make_fold
from data.pairs import DataError, PairVotes, read_pairs, subsample_votes
from data.tokens import TokenizedTexts, tokenize_texts

__all__ = [
    "DataConfig", "DataError", "FoldSplit", "PairVotes", "TokenizedTexts",
    "make_fold", "read_pairs", "subsample_votes", "tokenize_texts",
]
