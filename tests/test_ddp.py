"""Data-parallel trials (search.workers_per_trial / gpus_per_trial > 1): how batches and validation
texts are shared among the processes, the config rules, and a real search whose trials each run as a
two-process Ray Train DDP run (gloo, CPU) inside Tune, checked against one-process training."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
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
from search.config.load import load_config
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


NUM_SAMPLES = 2


@pytest.fixture(scope="module")
def ddp_search(tmp_path_factory, tiny_backbone, ruddit_pairs):
    """A real search on a local Ray: 2 trials, each a 2-process DDP run (1 CPU each), so only one fits
    on this 2-CPU machine at a time: a trial that left its placement group behind would starve the next.
    The first one fails; the second ends at ASHA's stop, and its Train run's directory, removed with
    its placement group (search.tune.ddp.release), must be gone."""
    tmp = tmp_path_factory.mktemp("ddp")
    backbone = tmp / "tiny-no-dropout"  # no dropout anywhere, so one process can replay a DDP trial exactly
    shutil.copytree(tiny_backbone, backbone)
    encoder = json.loads((backbone / "config.json").read_text())
    encoder.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (backbone / "config.json").write_text(json.dumps(encoder))
    cfg = {
        "data": {"pairs": str(ruddit_pairs), "max_votes": 900, "folds": 5, "max_length": 48},
        "model": {"backbone": str(backbone), "dropout": 0.0},
        # An odd batch: the two processes get 16 and 15 votes, so the loss weighting matters.
        "train": {"epochs": 1, "batch_size": 31, "val_every_n_steps": 5},
        "search": {
            "name": "ddp", "storage_path": str(tmp / "runs"), "num_samples": NUM_SAMPLES, "max_concurrent_trials": 1,
            "cpus_per_trial": 2, "workers_per_trial": 2, "grace_period": 0.5, "reduction_factor": 2, "baseline": False,
            "max_failures": 0,
            "space": {"train.lr": {"choice": [1e30, 1e-3]}},
            # First a trial whose loss turns NaN at its first step (its workers raise), then a good one.
            "points_to_evaluate": [{"train.lr": 1e30}, {"train.lr": 1e-3}],
        },
    }
    path = tmp / "search.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = subprocess.run([sys.executable, "-m", "search.cli", "search", str(path)], capture_output=True, text=True, timeout=900,
                         check=False)
    return tmp, out


@pytest.mark.slow
def test_ddp_trials_run_report_and_release_their_workers(ddp_search):
    tmp, out = ddp_search
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    assert f"search finished: {NUM_SAMPLES} trials, 1 errored" in out.stdout + out.stderr
    run = tmp / "runs" / "ddp"
    board = pd.read_csv(run / "export" / "leaderboard.csv").set_index("param:train.lr")
    assert len(board) == NUM_SAMPLES
    # The failing trial ends as an error naming the workers' own error; the next trial still gets workers.
    assert board.loc[1e30, "outcome"] == "error"
    assert "data-parallel training failed" in board.loc[1e30, "error"] and "training loss became nan" in board.loc[1e30, "error"]
    assert set(board.loc[[1e-3], "outcome"]) <= {"finished", "stopped_by_asha"}
    for trial_id in board.loc[[1e-3], "trial_id"]:
        result = run / trial_id / "result.json"
        rows = [json.loads(line) for line in result.read_text().splitlines()]
        last = rows[-1]
        assert last["workers"] == 2 and last["backend"] == "gloo" and last["device"] == "cpu"
        assert len(last["worker_ips"].split(",")) == len(last["node_id"].split(",")) == 2  # both processes' nodes
        epochs = [r["epoch"] for r in rows]
        assert epochs == sorted(epochs) and len(set(epochs)) == len(epochs)  # each validation reported once
        # Finished trials keep one checkpoint (the best, with the model); the Train runs' copies are gone.
        assert len(list(result.parent.glob("checkpoint_*"))) == 1
    assert not (run / "ddp").exists() or not any((run / "ddp").iterdir())
    # One line per validation in the logs (Ray Train's print patch would double it).
    line = next(x for x in out.stdout.splitlines() if "pairtune: trial " in x and "(2 workers)" in x)
    assert out.stdout.count(line.split(")", 1)[-1].strip()) == 1


@pytest.mark.slow
def test_ddp_trial_matches_one_process_training(ddp_search):
    """The exported best config trained in one process (`pairtune train`) follows the DDP trial:
    same batches, the loss weighted so DDP's gradient average is the batch mean, dropout off."""
    tmp, out = ddp_search
    assert out.returncode == 0, out.stderr[-3000:]
    run = tmp / "runs" / "ddp"
    summary = json.loads((run / "export" / "summary.json").read_text())
    rows = [json.loads(x) for x in (run / summary["best_trial"] / "result.json").read_text().splitlines()]
    best = load_config(run / "export" / "best.yaml")
    assert workers_per_trial(best.search) == 2  # the export keeps the search section as it was
    from model.train import fit, set_threads
    from search.tune.prepare import prepare_data

    set_threads(1)
    _, tracker = fit(best.model, best.train, prepare_data(best).fold_inputs(best.model.backbone, best.data.lowercase), best.data.max_length)
    one = {round(h.epoch, 2): h for h in tracker.history}
    assert len(one) >= len(rows) >= 2
    for r in rows:
        mine = one[round(r["epoch"], 2)]
        assert abs(mine.val_loss - r["val/loss"]) < 1e-5, (r["epoch"], mine.val_loss, r["val/loss"])
        assert abs(mine.agreement - r["val/agreement"]) < 1e-6, (r["epoch"], mine.agreement, r["val/agreement"])
