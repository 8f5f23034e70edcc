"""Data-parallel trials (search.workers_per_trial / gpus_per_trial > 1): how batches and validation
texts are shared among the processes, the config rules, and a real search whose trials each run as a
two-process Ray Train DDP run (gloo, CPU) inside Tune, checked against one-process training: that one
runs on a three-node cluster, in tests/test_cluster_jobs.py (ddp_job)."""


import numpy as np
import pytest
from conftest import shared

from data.loaders import (
    LengthGroupedBatches,
    ShardedBatches,
    sharded_batch_count,
    text_loader,
    train_loader,
)
from data.pairs import read_pairs, subsample_votes
from data.tokens import tokenize_texts
from search.config.parse import ConfigError, parse_config
from search.tune.ddp import workers_per_trial


def batches_of(n, batch_size, seed, lengths=None):
    lengths = np.arange(n) % 17 if lengths is None else lengths
    return LengthGroupedBatches(lengths, batch_size, seed)


@pytest.mark.parametrize("n,batch_size,world", [(100, 8, 2), (101, 8, 2), (97, 8, 3), (9, 8, 2), (64, 32, 4)])
def test_shards_split_every_batch_of_one_process_exactly(n, batch_size, world):
    plain = [list(b) for b in batches_of(n, batch_size, seed=5)]
    shards = [list(ShardedBatches(batches_of(n, batch_size, seed=5), n, batch_size, rank, world)) for rank in range(world)]
    kept = [b for b in plain if len(b) >= world]  # a last batch smaller than world is skipped
    assert len(kept) == sharded_batch_count(n, batch_size, world)
    for rank in range(world):
        assert len(shards[rank]) == len(kept) == len(ShardedBatches(batches_of(n, batch_size, 5), n, batch_size, rank, world))
    for i, batch in enumerate(kept):
        parts = [shards[rank][i] for rank in range(world)]
        assert sorted(x for part in parts for x in part) == sorted(batch)  # together: exactly the one-process batch
        assert max(map(len, parts)) - min(map(len, parts)) <= 1 and min(map(len, parts)) >= 1


def test_a_second_epoch_shards_the_same_second_epoch():
    one, two = batches_of(50, 8, seed=1), ShardedBatches(batches_of(50, 8, seed=1), 50, 8, 0, 2)
    for _ in range(2):
        assert [b[0::2] for b in one] == list(two)


def test_validation_texts_are_shared_out_and_every_process_runs_as_many_batches():
    pairs = subsample_votes(read_pairs(shared("ruddit_pairs.csv")), 300, 0)
    from model.backbone import load_tokenizer

    tokens = tokenize_texts(pairs.texts, load_tokenizer("minilm"), 64)
    texts = np.arange(len(pairs.texts))
    for world in (2, 3):
        loaders = [list(text_loader(tokens, texts, 16, 64, rank, world)) for rank in range(world)]
        assert len({len(batches) for batches in loaders}) == 1  # same step count on every process
        positions = np.concatenate([b["position"].numpy() for batches in loaders for b in batches])
        assert set(positions) == set(range(len(texts)))  # every text scored by some process


def test_training_loader_shards_votes(tiny_backbone):
    from data.loaders import FoldInputs
    from model.backbone import load_tokenizer

    pairs = subsample_votes(read_pairs(shared("ruddit_pairs.csv")), 200, 0)
    tokens = tokenize_texts(pairs.texts, load_tokenizer(tiny_backbone), 64)
    empty = np.array([], dtype=np.int64)
    data = FoldInputs(tokens, pairs.less, pairs.more, empty, empty)
    for grouping in (True, False):
        whole = [b["less"].numel() for b in train_loader(data, 32, 64, 3, grouping)]
        halves = [[b["less"].numel() for b in train_loader(data, 32, 64, 3, grouping, rank=r, world=2)] for r in (0, 1)]
        assert [a + b for a, b in zip(*halves, strict=True)] == whole[: len(halves[0])]


def config(**search):
    return {"data": {"pairs": "x.csv"}, "model": {"backbone": "minilm"}, "search": search}


def test_config_rules_for_data_parallel_trials():
    assert workers_per_trial(parse_config(config(gpus_per_trial=4, cpus_per_trial=8)).search) == 4
    assert workers_per_trial(parse_config(config(gpus_per_trial=1)).search) == 1
    assert workers_per_trial(parse_config(config(gpus_per_trial=0.5)).search) == 1
    assert workers_per_trial(parse_config(config(workers_per_trial=2, cpus_per_trial=2)).search) == 2
    bad = {
        "gpus_per_trial": ({"gpus_per_trial": 1.5}, "whole number"),
        "workers_per_trial": ({"workers_per_trial": 2, "gpus_per_trial": 1, "cpus_per_trial": 2}, "gpus_per_trial must be 0 or 2"),
        "cpus_per_trial": ({"workers_per_trial": 2, "cpus_per_trial": 1}, "each needs at least one"),
        "workers_per_trial ": ({"workers_per_trial": 0}, "whole number >= 1"),
    }
    for key, (search, message) in bad.items():
        with pytest.raises(ConfigError) as e:
            parse_config(config(**search), "c.yaml")
        assert f"c.yaml: search.{key.strip()}:" in str(e.value) and message in str(e.value), str(e.value)
