"""Pairwise losses and the agreement metric: pure functions over scores."""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("margin", "logistic")


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
    return (scores[more] > scores[less]).double().mean().item()
