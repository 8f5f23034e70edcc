"""The floor every search should beat: TF-IDF + ridge on the same leak-free fold, in seconds.

Each training text's target is the share of its training votes it won; the ridge model scores every
text, and validation agreement is computed exactly like the search metric (strictly greater, ties
are misses). Also reported: agreement of "the longer text is the more toxic one", the trivial floor.
`pairtune search` fits it before Ray starts (search/tune/baseline.py; search.baseline: false turns
that off) and shows it in the summary; `pairtune baseline CONFIG` fits it alone.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from model.intervals import agreement as _agreement

if TYPE_CHECKING:
    from data import FoldSplit, PairVotes

NAME = "tfidf_ridge"
DESCRIPTION = "TF-IDF (char 3-5) + ridge on each text's share of won votes"


def win_share(less: np.ndarray, more: np.ndarray, n_texts: int) -> tuple[np.ndarray, np.ndarray]:
    """Per text: number of votes it appears in, and the share of them it won."""
    wins = np.bincount(more, minlength=n_texts)
    seen = wins + np.bincount(less, minlength=n_texts)
    return seen, np.divide(wins, seen, out=np.zeros(n_texts), where=seen > 0)


def tfidf_ridge_scores(votes: PairVotes, split: FoldSplit, alpha: float = 1.0) -> tuple[np.ndarray, int]:
    """Fit on the split's training votes; (the score of every text, how many texts it was fitted on)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import Ridge

    seen, target = win_share(votes.less[split.train_votes], votes.more[split.train_votes], len(votes.texts))
    train_texts = np.flatnonzero(seen)
    texts = np.array(votes.texts, dtype=object)
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), min_df=2, sublinear_tf=True, lowercase=True)
    model = Ridge(alpha=alpha).fit(vec.fit_transform(texts[train_texts]), target[train_texts])
    return model.predict(vec.transform(texts)), len(train_texts)


def tfidf_ridge(votes: PairVotes, split: FoldSplit, alpha: float = 1.0) -> dict:
    """Fit on the split's training votes, score its validation votes."""
    start = time.perf_counter()
    scores, train_texts = tfidf_ridge_scores(votes, split, alpha)
    v = split.val_votes
    less, more = votes.less[v], votes.more[v]
    lengths = np.array([len(s) for s in votes.texts], dtype=np.float64)
    return {
        "baseline": NAME,
        "description": DESCRIPTION,
        "agreement": _agreement(scores, less, more),
        "length_agreement": _agreement(lengths, less, more),  # "the longer text is more toxic"
        "fold": split.fold,
        "train_texts": train_texts,
        "val_votes": len(v),
        "seconds": round(time.perf_counter() - start, 2),
    }


def describe(result: dict | None, best: float | None = None) -> str:
    """One line for summaries."""
    if result is None:
        return "baseline: not computed (search.baseline: false)"
    if "error" in result:
        return f"baseline ({DESCRIPTION}): failed: {result['error']}"
    line = f"baseline ({DESCRIPTION}): {result['agreement']:.4f}; longer-is-more-toxic: {result['length_agreement']:.4f}"
    if best is not None:
        line += f"; best trial {best - result['agreement']:+.4f} over the baseline"
    return line
