"""A real search through the CLI: local Ray, OptunaSearch + ASHA, tiny BERT on real Ruddit votes;
then export -> train round trip and a reload of the best checkpoint."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from data.loaders import text_loader
from model.checkpoint import load_checkpoint
from model.losses import pairwise_agreement
from model.metrics import AGREEMENT, VAL_LOSS
from search.config.load import load_config
from search.tune.prepare import load_split

pytestmark = pytest.mark.slow

NUM_SAMPLES = 6


def results(trial_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines() if line.strip()]


def cli(*args, timeout=900):
    return subprocess.run([sys.executable, "-m", "search.cli", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def search_run(tmp_path_factory, tiny_backbone, ruddit_pairs):
    tmp = tmp_path_factory.mktemp("search")
    config = {
        "data": {"pairs": str(ruddit_pairs), "max_votes": 1800, "folds": 5, "max_length": 64},
        "model": {"backbone": tiny_backbone},
        "train": {"epochs": 3, "batch_size": 32},
        "search": {
            "name": "it", "storage_path": str(tmp / "runs"), "num_samples": NUM_SAMPLES, "max_concurrent_trials": 2,
            "grace_period": 1, "reduction_factor": 3, "n_startup_trials": 3,
            "space": {"train.lr": {"loguniform": [1e-6, 3e-2]}, "train.margin": {"uniform": [0.1, 1.0]},
                      "train.loss": {"choice": ["margin", "logistic"]}, "model.dropout": 0.27},
            "points_to_evaluate": [{"train.lr": 1e-3, "train.margin": 0.5, "train.loss": "margin"}],
        },
    }
    path = tmp / "search.yaml"
    path.write_text(yaml.safe_dump(config))
    out = cli("search", str(path))
    return tmp, path, out


def test_search_runs_and_ends_with_an_export(search_run):
    tmp, _, out = search_run
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    log = out.stdout + out.stderr
    assert "Trial name" in log and "TERMINATED" in log  # Ray Tune's live trial table
    assert "Started a local Ray instance" in log
    assert "127.0.0.1" in log.split("View the dashboard at")[1][:40]  # dashboard on loopback only
    run = tmp / "runs" / "it"
    for name in ("export/best.yaml", "export/leaderboard.csv", "export/summary.json", "pairtune_config.yaml", "pairtune_data.json"):
        assert (run / name).exists(), name


def test_leaderboard_has_every_trial_and_asha_stopped_some(search_run):
    tmp, _, _ = search_run
    board = pd.read_csv(tmp / "runs" / "it" / "export" / "leaderboard.csv")
    assert len(board) == NUM_SAMPLES
    assert {"param:train.lr", "param:train.margin", "param:train.loss", "best_agreement", "last_agreement",
            "epochs_run", "outcome"} <= set(board.columns)
    assert (board.outcome == "stopped_by_asha").sum() >= 1
    stopped = board[board.outcome == "stopped_by_asha"]
    assert (stopped.epochs_run < 3).all()
    assert (board[board.outcome == "finished"].epochs_run == 3).all()
    assert (board.best_agreement >= board.last_agreement - 1e-12).all()
    assert board.best_agreement.iloc[0] == board.best_agreement.max()
    summary = json.loads((tmp / "runs" / "it" / "export" / "summary.json").read_text())
    assert summary["ended_by"] == "num_samples"  # no budget set: every trial ran
    # The notebook-style first point ran as given.
    assert np.isclose(board["param:train.lr"], 1e-3).any()


def test_only_the_best_epoch_is_checkpointed(search_run):
    tmp, _, _ = search_run
    run = tmp / "runs" / "it"
    for trial_dir in (p for p in run.iterdir() if (p / "params.json").exists()):
        checkpoints = list(trial_dir.glob("checkpoint_*"))
        assert len(checkpoints) == 1, trial_dir
        metrics = json.loads((checkpoints[0] / "metrics.json").read_text())
        results = [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines()]
        assert metrics[AGREEMENT] == max(r[AGREEMENT] for r in results)


def test_best_checkpoint_reproduces_its_agreement(search_run):
    tmp, _, _ = search_run
    summary = json.loads((tmp / "runs" / "it" / "export" / "summary.json").read_text())
    module, config = load_checkpoint(summary["best_checkpoint"])
    cfg = load_config(tmp / "runs" / "it" / "export" / "best.yaml")
    assert config["model"] == cfg.to_dict()["model"]
    votes, split = load_split(cfg)
    from data import tokenize_texts
    from data.loaders import FoldData
    from model.backbone import load_tokenizer

    tokens = tokenize_texts(votes.texts, load_tokenizer(cfg.model.backbone), cfg.data.max_length)
    v = split.val_votes
    data = FoldData(tokens, votes.less[:0], votes.more[:0], votes.less[v], votes.more[v])
    texts, less, more = data.val_texts()
    scores = torch.empty(len(texts))
    with torch.no_grad():
        for batch in text_loader(tokens, texts, 64, cfg.data.max_length):
            scores[batch["position"]] = module(batch["input_ids"], batch["attention_mask"])
    got = pairwise_agreement(scores, torch.from_numpy(less), torch.from_numpy(more))
    assert got == pytest.approx(summary["best_agreement"], abs=2 / len(less))


def test_export_then_train_round_trip(search_run, tmp_path):
    tmp, _, _ = search_run
    out = cli("export", str(tmp / "runs" / "it"), "--out", str(tmp_path / "exp"))
    assert out.returncode == 0, out.stderr[-2000:]
    best = tmp_path / "exp" / "best.yaml"
    cfg = load_config(best)
    assert cfg.search.space == {} and cfg.search.points_to_evaluate == []  # every value fixed
    exported = yaml.safe_load(best.read_text())
    board = pd.read_csv(tmp_path / "exp" / "leaderboard.csv")
    assert exported["train"]["lr"] == pytest.approx(board["param:train.lr"].iloc[0])
    assert exported["model"]["dropout"] == 0.27  # fixed under search.space, so every trial had it
    trained = cli("train", str(best), "--out", str(tmp_path / "model"))
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert (tmp_path / "model" / "model.pt").exists() and (tmp_path / "model" / "config.yaml").exists()
    summary = json.loads((tmp_path / "exp" / "summary.json").read_text())
    assert summary["best_agreement"] == pytest.approx(board.best_agreement.iloc[0], abs=1e-12)
    assert_trains_as_its_trial(trained, summary, cfg.train.epochs)


def assert_trains_as_its_trial(trained: subprocess.CompletedProcess, summary: dict, epochs: int) -> None:
    """`pairtune train best.yaml` trains the best trial again: same config, seed, fold and threads
    (search.cpus_per_trial), so it validates exactly as the trial did at every epoch the trial ran
    (ASHA may have stopped it early). Agreement is a count over a few hundred votes, so the 4
    decimals train logs identify it exactly."""
    trial = results(Path(summary["best_checkpoint"]).parent)
    assert summary["best_agreement"] == max(r[AGREEMENT] for r in trial)
    logged = re.findall(r"fold \d+, epoch ([\d.]+): val/agreement ([\d.]+), val loss ([\d.]+)", trained.stderr)
    retrained = [(float(e), float(a), float(v)) for e, a, v in logged]
    assert len(retrained) == epochs >= len(trial), trained.stderr[-3000:]
    assert retrained[: len(trial)] == [(r["epoch"], round(r[AGREEMENT], 4), round(r[VAL_LOSS], 4)) for r in trial]
    printed = float(trained.stdout.split("best val/agreement:")[1].split()[0])
    assert printed == max(a for _, a, _ in retrained) >= round(summary["best_agreement"], 4)
