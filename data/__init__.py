"""Pair-vote data: reading CSVs, leak-free folds, tokenising each unique text once.

    pairs.py     reading pair-vote CSVs (less, more, and the optional worker column: annotation groups)
    scores.py    scored texts and multi-label rows, turned into pair votes inside each fold
    folds.py     leak-free folds: no text on both sides of a fold
    tokens.py    each unique text tokenised once; cheap padded batches from the result
    loaders.py   training batches (length-grouped, sharded for DDP) and validation batches
    prepare.py   read, split and tokenise once per search (the driver), and the one rule for a fold's votes
    config.py    the `data:` section of the YAML; demo/ holds the generated demo votes

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
