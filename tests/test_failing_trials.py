"""Failing trials are contained: a diverging trial (loss NaN) and a trial that raises both end as
errors with their reason in the leaderboard and the summary; the other trials and the search go on."""

import shutil
import subprocess
import sys

import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.slow


def test_nan_and_raising_trials_do_not_take_the_search_down(tmp_path, tiny_backbone, ruddit_pairs):
    broken = tmp_path / "broken-bert"
    shutil.copytree(tiny_backbone, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")  # loads fine until the trial
    config = {
        "data": {"pairs": str(ruddit_pairs), "max_votes": 1500, "max_length": 64},
        "model": {"backbone": tiny_backbone},
        "train": {"epochs": 1, "batch_size": 32, "schedule": "constant"},
        "search": {
            "name": "f", "storage_path": str(tmp_path / "runs"), "num_samples": 3, "max_concurrent_trials": 2,
            "scheduler": "fifo", "max_failures": 0,  # both failures are deterministic: a retry would fail again
            "space": {"train.lr": {"choice": [1e-3, 1e30]}, "model.backbone": {"choice": [tiny_backbone, str(broken)]}},
            "points_to_evaluate": [
                {"train.lr": 1e-3, "model.backbone": tiny_backbone},
                {"train.lr": 1e30, "model.backbone": tiny_backbone},
                {"train.lr": 1e-3, "model.backbone": str(broken)},
            ],
        },
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    out = subprocess.run([sys.executable, "-m", "search.cli", "search", str(path)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "search finished: 3 trials, 2 errored" in out.stdout
    board = pd.read_csv(tmp_path / "runs" / "f" / "export" / "leaderboard.csv").set_index(["param:train.lr", "param:model.backbone"])
    good, nan, raised = board.loc[(1e-3, tiny_backbone)], board.loc[(1e30, tiny_backbone)], board.loc[(1e-3, str(broken))]
    assert good.outcome == "finished" and good.best_agreement > 0
    assert nan.outcome == "error" and "training loss became nan" in nan.error
    assert raised.outcome == "error" and "safetensors" in raised.error.lower()
    assert "training loss became nan" in out.stdout  # the summary says why
