"""Pairwise losses, the agreement metric and correlations: pure functions over scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from model.intervals import vote_hits

LOSSES = ("margin", "logistic")
POINTWISE_LOSSES = ("mse",)  # regression on each text's score (scored data only)


def margin_ranking_loss(more: torch.Tensor, less: torch.Tensor, margin: float) -> torch.Tensor:
    """mean(max(0, margin - (more - less))): torch's MarginRankingLoss with target +1."""
    return F.relu(margin - (more - less)).mean()


def logistic_pairwise_loss(more: torch.Tensor, less: torch.Tensor) -> torch.Tensor:
    """mean(log(1 + exp(-(more - less)))): RankNet / Bradley-Terry negative log-likelihood."""
    return F.softplus(less - more).mean()


def pairwise_loss(kind: str, more: torch.Tensor, less: torch.Tensor, margin: float = 0.5) -> torch.Tensor:
    """Loss of scores for (more, less) pairs; computed in fp32 whatever the autocast dtype."""
    more, less = more.float(), less.float()
    if kind == "margin":
        return margin_ranking_loss(more, less, margin)
    if kind == "logistic":
        return logistic_pairwise_loss(more, less)
    raise ValueError(f"unknown loss {kind!r}; expected one of {LOSSES}")


def pairwise_agreement(scores: torch.Tensor, less: torch.Tensor, more: torch.Tensor) -> float:
    """Share of votes whose order the scores reproduce, as Kaggle's Jigsaw Rate Severity scores it.

    One point per vote when score[more] > score[less] strictly (ties are misses); repeated and
    conflicting votes all count. scores: (N,) per unique text; less, more: (V,) indices into it.
    """
    if len(less) == 0:
        raise ValueError("no votes to compute agreement on")
    # The one rule (model/intervals.py), on the CPU: a validation's scores are one float per text.
    return float(vote_hits(scores.detach().cpu().numpy(), less.cpu().numpy(), more.cpu().numpy()).mean())


def _ranks(x: np.ndarray) -> np.ndarray:
    return pd.Series(x).rank(method="average").to_numpy()


def pearson(pred: np.ndarray, target: np.ndarray) -> float:
    """Pearson correlation; 0.0 when either side is constant (a constant scorer orders nothing)."""
    pred, target = np.asarray(pred, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if len(pred) < 2 or pred.std() == 0 or target.std() == 0:
        return 0.0
    return float(np.corrcoef(pred, target)[0, 1])


def spearman(pred: np.ndarray, target: np.ndarray) -> float:
    """Spearman rank correlation (Pearson of average ranks, so ties are handled as scipy does)."""
    return pearson(_ranks(np.asarray(pred, dtype=np.float64)), _ranks(np.asarray(target, dtype=np.float64)))
