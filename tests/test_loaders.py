import numpy as np
import pytest

from data import make_fold, read_pairs, tokenize_texts
from data.folds import cap_train_votes
from data.loaders import FoldInputs, LengthGroupedBatches, train_loader
from model.backbone import load_tokenizer


@pytest.fixture(scope="module")
def data(ruddit_pairs):
    votes = read_pairs(ruddit_pairs)
    tokens = tokenize_texts(votes.texts, load_tokenizer("minilm"), 128)
    idx = np.arange(3000)
    return FoldInputs(tokens, votes.less[idx], votes.more[idx], votes.less[:0], votes.more[:0])


def test_length_grouped_epoch_uses_every_vote_once_and_reshuffles():
    lengths = np.random.default_rng(0).integers(5, 128, size=1000)
    sampler = LengthGroupedBatches(lengths, batch_size=32, seed=3, group=4)
    first = list(sampler)
    assert list(sampler) == first  # the order depends only on (seed, epoch): a retry draws it again
    sampler.set_epoch(1)  # as Lightning does before each epoch
    second = list(sampler)
    assert len(first) == len(sampler) == 32
    assert sorted(i for b in first for i in b) == list(range(1000))
    assert first != second  # a new order each epoch
    sampler.set_epoch(1, skip=5)  # resumed inside epoch 1 after 5 batches
    assert list(sampler) == second[5:] and list(sampler) == second  # the skip applies once
    again = LengthGroupedBatches(lengths, batch_size=32, seed=3, group=4)
    assert list(again) == first  # deterministic given seed and epoch


@pytest.mark.parametrize("grouping", [True, False])
def test_every_training_vote_appears_once_per_epoch(data, grouping):
    seen = []
    for batch in train_loader(data, 64, 128, seed=0, length_grouping=grouping):
        assert batch["input_ids"].shape[0] <= 128  # unique texts of at most 64 votes
        less_ids = batch["input_ids"][batch["less"]]
        seen.append(len(batch["less"]))
        assert less_ids.shape[0] == len(batch["less"])
    assert sum(seen) == len(data.train_less)


def test_length_grouping_cuts_padding_on_real_texts(data):
    def real_share(grouping):
        real = total = 0
        for batch in train_loader(data, 32, 128, seed=0, length_grouping=grouping):
            real += batch["attention_mask"].sum().item()
            total += batch["attention_mask"].numel()
        return real / total

    assert real_share(True) > real_share(False) + 0.15


def test_cap_train_votes_keeps_validation_whole(ruddit_pairs):
    votes = read_pairs(ruddit_pairs)
    split = make_fold(votes, 5, 0, seed=42)
    capped = cap_train_votes(split, 1000, seed=1)
    assert len(capped.train_votes) == 1000 and set(capped.train_votes) <= set(split.train_votes)
    assert np.array_equal(capped.val_votes, split.val_votes)
    assert cap_train_votes(split, None, 1) is split
