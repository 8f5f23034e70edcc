"""The TF-IDF + ridge baseline: its target, its agreement on learnable and on random votes, and
`pairtune baseline` on real Ruddit votes."""

import numpy as np
import pytest
import yaml

from data import PairVotes, make_fold
from model.baseline import tfidf_ridge, win_share
from search.cli.main import main


def test_win_share_counts_each_texts_votes():
    seen, share = win_share(np.array([0, 0, 1]), np.array([1, 2, 2]), 4)
    assert seen.tolist() == [2, 2, 2, 0]
    assert share.tolist() == [0.0, 0.5, 1.0, 0.0]


def _votes(rng, n_texts=400, n_votes=3000, learnable=True):
    """Texts made of common words; toxic ones also carry 'zorgblat'. Votes prefer the toxic text
    (learnable) or are random coin flips."""
    words = ["the", "talk", "page", "edit", "article", "source", "please", "thanks", "wiki", "policy"]
    toxic = rng.random(n_texts) < 0.5
    texts = [" ".join(rng.choice(words, 8)) + (" zorgblat" if t else "") + f" {i}" for i, t in enumerate(toxic)]
    a, b = rng.integers(0, n_texts, (2, n_votes))
    keep = (a != b) & (toxic[a] != toxic[b])
    a, b = a[keep], b[keep]
    flip = toxic[a] if learnable else rng.random(len(a)) < 0.5
    less, more = np.where(flip, b, a), np.where(flip, a, b)
    return PairVotes(texts=texts, less=less, more=more, source="synthetic")


def test_baseline_learns_a_learnable_signal_and_not_noise():
    rng = np.random.default_rng(0)
    votes = _votes(rng)
    result = tfidf_ridge(votes, make_fold(votes, 5, 0, seed=0))
    assert result["agreement"] > 0.95 and result["val_votes"] > 50
    noise = _votes(rng, learnable=False)
    assert abs(tfidf_ridge(noise, make_fold(noise, 5, 0, seed=0))["agreement"] - 0.5) < 0.1


def test_baseline_command_on_real_votes(tmp_path, ruddit_pairs, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"data": {"pairs": str(ruddit_pairs), "max_votes": 8000, "folds": 5}}))
    assert main(["baseline", str(path)]) == 0
    out = capsys.readouterr().out
    agreement = float(out.split("val/agreement ")[1].split()[0])
    length = float(out.split("longer-is-more-toxic: ")[1].split(")")[0])
    # Ruddit's documented floors: "longer is more toxic" ~0.58, TF-IDF + ridge clearly above it.
    assert 0.5 < length < 0.65 and agreement > length + 0.03


def test_baseline_reports_config_errors(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"data": {"pairs": str(tmp_path / "nope.csv")}}))
    assert main(["baseline", str(path)]) == 2
    assert "nope.csv: file not found" in capsys.readouterr().err


@pytest.mark.parametrize("value", [True, False])
def test_search_baseline_flag(value, tmp_path):
    from search.config.parse import parse_config

    assert parse_config({"search": {"baseline": value}}).search.baseline is value


def test_few_validation_votes_are_warned_about(tmp_path, ruddit_pairs, capsys, caplog):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"data": {"pairs": str(ruddit_pairs), "max_votes": 400, "folds": 4}}))
    assert main(["baseline", str(path)]) == 0
    val_votes = int(capsys.readouterr().out.split("validated on ")[1].split()[0])
    assert 0 < val_votes < 200
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(f"only {val_votes} validation votes" in w for w in warnings), warnings


def test_enough_validation_votes_are_not_warned_about(tmp_path, ruddit_pairs, capsys, caplog):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"data": {"pairs": str(ruddit_pairs), "max_votes": 2000, "folds": 4}}))
    assert main(["baseline", str(path)]) == 0
    assert not any("validation votes" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
