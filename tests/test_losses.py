
import numpy as np
import pytest
import torch

from model.losses import logistic_pairwise_loss, margin_ranking_loss, pairwise_agreement, pairwise_loss


def test_margin_loss_matches_torch_margin_ranking_loss():
    g = torch.Generator().manual_seed(0)
    more, less = torch.randn(64, generator=g), torch.randn(64, generator=g)
    for margin in (0.0, 0.5, 2.0):
        expected = torch.nn.MarginRankingLoss(margin=margin)(more, less, torch.ones(64))
        assert torch.allclose(margin_ranking_loss(more, less, margin), expected)


def test_logistic_loss_is_bradley_terry_nll():
    more, less = torch.tensor([2.0, 0.0, -1.0]), torch.tensor([0.0, 0.0, 1.0])
    expected = -torch.log(torch.sigmoid(more - less)).mean()
    assert torch.allclose(logistic_pairwise_loss(more, less), expected, atol=1e-6)


def test_losses_reward_correct_order():
    right, wrong = torch.tensor([3.0]), torch.tensor([-3.0])
    for kind in ("margin", "logistic"):
        assert pairwise_loss(kind, right, -right) < pairwise_loss(kind, wrong, -wrong)
    assert pairwise_loss("margin", torch.tensor([1.0]), torch.tensor([0.0]), margin=0.5) == 0.0


def test_unknown_loss_is_rejected():
    with pytest.raises(ValueError, match="unknown loss"):
        pairwise_loss("hinge2", torch.zeros(1), torch.zeros(1))


def brute_force_agreement(scores, votes):
    hits = 0
    for less, more in votes:
        hits += 1 if scores[more] > scores[less] else 0
    return hits / len(votes)


def test_agreement_matches_brute_force_with_ties_repeats_and_conflicts():
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 5, size=30).astype(float)  # small integers: many ties
    votes = [tuple(rng.choice(30, 2, replace=False)) for _ in range(500)]
    votes += votes[:50] + [(m, l) for l, m in votes[:50]]  # repeated and conflicting votes
    less = torch.tensor([v[0] for v in votes])
    more = torch.tensor([v[1] for v in votes])
    got = pairwise_agreement(torch.tensor(scores), less, more)
    assert got == pytest.approx(brute_force_agreement(scores, votes), abs=1e-12)


def test_ties_count_as_misses_and_conflicts_cap_agreement():
    scores = torch.tensor([1.0, 1.0, 2.0])
    assert pairwise_agreement(scores, torch.tensor([0]), torch.tensor([1])) == 0.0
    # A pair voted both ways can get at most half of its votes right.
    less, more = torch.tensor([0, 2]), torch.tensor([2, 0])
    assert pairwise_agreement(scores, less, more) == 0.5


def test_agreement_needs_votes():
    with pytest.raises(ValueError):
        pairwise_agreement(torch.zeros(2), torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long))
