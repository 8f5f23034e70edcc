"""Pair-vote data: reading CSVs, leak-free folds, tokenising each unique text once.

May import: nothing from model/ or search/. The names below are loaded on first use, so that
`from data.config import DataConfig` (validating a config) imports neither pandas nor torch.
"""

import importlib

_HOME = {
    "DataConfig": "data.config",
    "FoldSplit": "data.folds", "make_fold": "data.folds",
    "DataError": "data.pairs", "PairVotes": "data.pairs", "read_pairs": "data.pairs", "subsample_votes": "data.pairs",
    "TokenizedTexts": "data.tokens", "tokenize_texts": "data.tokens",
}

__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module 'data' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME[name]), name)
