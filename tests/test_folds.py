import numpy as np
import pytest

from data import make_fold, read_pairs
from data.folds import _folds_by_text, assign_folds, connected_components
from data.pairs import PairVotes


@pytest.fixture(scope="module")
def ruddit(ruddit_pairs):
    return read_pairs(ruddit_pairs)


def texts_of(votes, idx):
    return set(votes.less[idx].tolist()) | set(votes.more[idx].tolist())


@pytest.mark.parametrize("fold", range(5))
def test_ruddit_folds_are_leak_free(ruddit, fold):
    split = make_fold(ruddit, 5, fold, seed=42)
    assert split.method == "texts"  # the Ruddit vote graph is one dense component
    assert not texts_of(ruddit, split.train_votes) & texts_of(ruddit, split.val_votes)
    assert len(split.train_votes) + len(split.val_votes) + split.dropped_votes == ruddit.n_votes
    assert len(set(split.train_votes.tolist()) & set(split.val_votes.tolist())) == 0
    # Balanced and not wasteful: each fold validates on a real share of the votes.
    assert 0.05 < len(split.val_votes) / ruddit.n_votes < 0.25
    assert split.dropped_votes < 0.30 * ruddit.n_votes


def test_every_text_validates_in_exactly_one_fold(ruddit):
    folds, _ = assign_folds(ruddit, 5, seed=42)
    assert set(np.unique(folds)) == set(range(5))
    sizes = np.bincount(folds)
    assert sizes.max() - sizes.min() <= 0.07 * len(ruddit.texts)


def test_refined_split_keeps_more_votes_than_random(ruddit):
    refined, _ = assign_folds(ruddit, 5, seed=42)
    random = _folds_by_text(len(ruddit.texts), ruddit.less, ruddit.more, 5, np.random.default_rng(42), passes=0)
    crossing = lambda f: np.mean(f[ruddit.less] != f[ruddit.more])  # noqa: E731
    assert crossing(refined) < crossing(random) - 0.2


def test_split_is_deterministic_by_seed(ruddit):
    a = make_fold(ruddit, 5, 1, seed=7)
    b = make_fold(ruddit, 5, 1, seed=7)
    c = make_fold(ruddit, 5, 1, seed=8)
    assert np.array_equal(a.val_votes, b.val_votes) and np.array_equal(a.train_votes, b.train_votes)
    assert not np.array_equal(a.val_votes, c.val_votes)


def test_sparse_graph_splits_by_component_and_drops_nothing():
    # 40 disjoint components of 3 texts with 2 votes each.
    less = np.array([3 * c + i for c in range(40) for i in (0, 1)])
    more = np.array([3 * c + i + 1 for c in range(40) for i in (0, 1)])
    votes = PairVotes([f"t{i}" for i in range(120)], less, more, "mem")
    for fold in range(4):
        split = make_fold(votes, 4, fold, seed=0)
        assert split.method == "components" and split.dropped_votes == 0
        assert len(split.val_votes) == 20
        assert not texts_of(votes, split.train_votes) & texts_of(votes, split.val_votes)


def test_connected_components():
    comp = connected_components(6, np.array([0, 2, 3]), np.array([1, 3, 4]))
    assert comp[0] == comp[1] and comp[2] == comp[3] == comp[4]
    assert len({comp[0], comp[2], comp[5]}) == 3


@pytest.mark.parametrize("fmt", ["pairs", "scores"])
def test_texts_the_model_sees_identically_share_a_fold(tmp_path, tiny_backbone, fmt):
    """Leak-free over what the model sees: case variants under data.lowercase, and texts identical in
    their first max_length tokens, never sit on both sides of a fold; the merge is counted."""
    import pandas as pd

    from search.config.parse import parse_config
    from search.tune.prepare import prepare_data

    rng = np.random.default_rng(0)
    words = ["harsh", "mild", "rude", "kind", "awful", "calm", "nasty", "gentle", "vile", "sweet"]
    base = [" ".join(rng.choice(words, size=4)) + f" number {i}" for i in range(120)]
    prefix = " ".join(["the same long opening"] * 6)  # far past max_length 12 tokens
    variants = [t.upper() for t in base[:40]] + [f"{prefix} tail {i}" for i in range(40)]
    texts = base + variants
    if fmt == "pairs":
        pairs = [(texts[i], texts[j]) for i, j in rng.integers(0, len(texts), size=(1500, 2)) if i != j]
        pd.DataFrame(pairs, columns=["less_toxic", "more_toxic"]).to_csv(tmp_path / "d.csv", index=False)
        data = {"pairs": str(tmp_path / "d.csv")}
    else:
        pd.DataFrame({"comment_id": range(len(texts)), "text": texts, "score": rng.normal(size=len(texts))}).to_csv(
            tmp_path / "d.csv", index=False)
        data = {"pairs": str(tmp_path / "d.csv"), "format": "scores", "text_column": "text", "score_column": "score"}
    cfg = parse_config({"data": {**data, "folds": 4, "max_length": 12, "lowercase": True},
                        "model": {"backbone": tiny_backbone}}, "t.yaml")
    prepared = prepare_data(cfg)
    votes, split = prepared.votes, prepared.split
    seen = lambda i: prefix if votes.texts[i].startswith(prefix) else votes.texts[i].lower()  # noqa: E731
    train = {seen(i) for i in texts_of(votes, split.train_votes)}
    val = {seen(i) for i in texts_of(votes, split.val_votes)}
    assert not train & val
    assert prepared.summary()["texts_merged_same_input"] >= 40 + 39  # 40 case twins, 40 prefixes in one group
    if fmt == "pairs":  # `pairtune train --folds` splits its other folds by the same rule
        from search.config.parse import with_params
        from search.tune.prepare import load_split
        from search.recipes.train import _on_fold

        other = with_params(cfg, {"data.fold": 2})
        assert np.array_equal(_on_fold(prepared, other).split.val_votes, load_split(other)[1].val_votes)
