"""TF-IDF + ridge floor on the same leak-free fold a search uses.

Each training text's target is the share of its training votes it won; validation agreement is
computed exactly like the search metric. Usage:

    python benchmarks/tfidf_baseline.py CONFIG [--set key=value ...]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import Ridge

from model.losses import pairwise_agreement
from search.config import load_config
from search.prepare import load_split


def win_share(less: np.ndarray, more: np.ndarray, n_texts: int) -> tuple[np.ndarray, np.ndarray]:
    """Per text: number of votes it appears in, and the share of them it won."""
    wins = np.bincount(more, minlength=n_texts)
    seen = wins + np.bincount(less, minlength=n_texts)
    return seen, np.divide(wins, seen, out=np.zeros(n_texts), where=seen > 0)


def tfidf_ridge_agreement(cfg) -> dict:
    start = time.perf_counter()
    votes, split = load_split(cfg)
    t, v = split.train_votes, split.val_votes
    seen, target = win_share(votes.less[t], votes.more[t], len(votes.texts))
    train_texts = np.flatnonzero(seen)
    texts = np.array(votes.texts, dtype=object)
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), min_df=2, sublinear_tf=True, lowercase=True)
    x = vec.fit_transform(texts[train_texts])
    model = Ridge(alpha=1.0).fit(x, target[train_texts])
    scores = torch.from_numpy(model.predict(vec.transform(texts)))
    agreement = pairwise_agreement(scores, torch.from_numpy(votes.less[v]), torch.from_numpy(votes.more[v]))
    return {"agreement": agreement, "train_texts": int(len(train_texts)), "val_votes": int(len(v)),
            "seconds": round(time.perf_counter() - start, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    print(tfidf_ridge_agreement(load_config(args.config, args.overrides)))


if __name__ == "__main__":
    main()
