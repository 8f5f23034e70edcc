"""`pairtune lr-find`: Lightning's range test on the config's fold (tiny BERT, real Ruddit votes),
its suggestion, and the config written back with a narrowed learning-rate range."""

import math
import re

import pytest
import yaml

from search.cli.main import main
from search.config.load import load_config
from search.recipes.lr_find import HIGH_FACTOR, LOW_FACTOR

POINT_LRS = [1e-6, 1e-1]  # first points at both ends of the config's train.lr range


@pytest.fixture()
def config_path(tmp_path, tiny_backbone, ruddit_pairs):
    raw = {
        "data": {"pairs": str(ruddit_pairs), "max_votes": 600, "folds": 3, "max_length": 32},
        "model": {"backbone": tiny_backbone},
        "train": {"batch_size": 16, "lr": 1e-3},
        "search": {"name": "lr", "space": {"train.lr": {"loguniform": [1e-6, 1e-1]}, "train.margin": {"uniform": [0.1, 1.0]}},
                   "points_to_evaluate": [{"train.lr": lr} for lr in POINT_LRS]},
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_lr_find_suggests_and_writes_a_narrowed_range(config_path, tmp_path, capsys, monkeypatch):
    import search.recipes.lr_find

    curves, find_lr = [], search.recipes.lr_find.find_lr

    def recording_find_lr(*args, **kwargs):  # the CLI prints the suggestion; the test also needs the curve
        curves.append(find_lr(*args, **kwargs))
        return curves[-1]

    monkeypatch.setattr(search.recipes.lr_find, "find_lr", recording_find_lr)
    out_path = tmp_path / "elsewhere" / "narrow.yaml"
    # max_lr far past divergence: the test must end cleanly, not fail on the exploding loss
    code = main(["lr-find", str(config_path), "--steps", "30", "--min-lr", "1e-6", "--max-lr", "1e3",
                 "--write", str(out_path), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "steps from 1e-06 to 1000 on" in out
    suggestion = float(re.search(r"suggested learning rate: (\S+)", out).group(1))
    # The suggestion is a rate the test tried, past Lightning's first 10 and before its last (never an
    # end of the tested range), where the recorded loss falls; the test itself went on until the loss
    # diverged (Lightning stops at 4x the best loss), far below the 1e3 it was allowed.
    (curve,) = curves
    lrs, losses = curve["lrs"], curve["losses"]
    i = min(range(len(lrs)), key=lambda j: abs(lrs[j] - curve["suggestion"]))
    assert 10 <= i < len(lrs) - 1 and suggestion == pytest.approx(lrs[i], rel=5e-3), (suggestion, lrs)
    assert losses[i] < losses[i - 1], list(zip(lrs, losses))
    diverged = math.isnan(losses[-1]) or losses[-1] > 4 * min(losses)
    assert len(lrs) < 30 and lrs[-1] < 1e3 and diverged, list(zip(lrs, losses))
    written = load_config(out_path)  # valid, loads from another directory
    low, high = written.search.space["train.lr"]["loguniform"]
    assert low == pytest.approx(suggestion / LOW_FACTOR, rel=0.01) and high == pytest.approx(suggestion * HIGH_FACTOR, rel=0.01)
    original = load_config(config_path)
    assert written.search.space["train.margin"] == original.search.space["train.margin"]  # the rest is kept
    assert written.data == original.data and written.train == original.train
    # Two first points at the two ends of the old range: the new range spans a factor 30, so at least
    # one falls outside; exactly those outside get a note.
    outside = [(k, lr) for k, lr in enumerate(POINT_LRS) if not low <= lr <= high]
    assert outside
    notes = [ln for ln in out.splitlines() if ln.startswith("note: ")]
    assert notes == [f"note: search.points_to_evaluate[{k}].train.lr {lr:g} is outside the new range [{low:g}, {high:g}]"
                     for k, lr in outside]


def test_lr_find_rejects_a_bad_range(config_path, capsys):
    assert main(["lr-find", str(config_path), "--min-lr", "1", "--max-lr", "0.1"]) == 2
    assert "need 0 < min_lr < max_lr" in capsys.readouterr().err


def test_a_diverged_range_test_step_ends_the_test_instead_of_failing(tiny_backbone):
    """The range test pushes the rate until training diverges; a non-finite loss must stop it, not
    raise like a failing trial does."""
    from types import SimpleNamespace

    import torch

    from model.config import ModelConfig, TrainConfig
    from search.recipes.lr_find import _RangeTestRanker

    module = _RangeTestRanker(ModelConfig(backbone=tiny_backbone), TrainConfig(), total_steps=10)
    module._trainer = SimpleNamespace(should_stop=False, global_step=0)
    with torch.no_grad():
        module.head.weight.fill_(float("nan"))
    batch = {"input_ids": torch.tensor([[101, 2000, 102], [101, 3000, 102]]), "attention_mask": torch.ones(2, 3, dtype=torch.long),
             "less": torch.tensor([0]), "more": torch.tensor([1])}
    assert module.training_step(batch, 0) is None
    assert module._trainer.should_stop
