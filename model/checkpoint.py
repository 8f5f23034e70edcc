"""Saving and loading a trained ranker: weights (loaded with weights_only=True) plus its config."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import yaml

from model.config import ModelConfig, TrainConfig
from model.ranker import PairwiseRanker

WEIGHTS = "model.pt"
CONFIG = "config.yaml"
METRICS = "metrics.json"


def save_checkpoint(directory: str | Path, module: PairwiseRanker, config: dict, metrics: dict) -> Path:
    """config: the full config mapping (the CLI's schema) that produced the model."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    torch.save(state, directory / WEIGHTS)
    (directory / CONFIG).write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    (directory / METRICS).write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    return directory


def load_checkpoint(directory: str | Path, map_location: str = "cpu") -> tuple[PairwiseRanker, dict]:
    """The ranker saved in `directory` (in eval mode) and the config mapping it was trained with."""
    directory = Path(directory)
    config = yaml.safe_load((directory / CONFIG).read_text(encoding="utf-8"))
    module = PairwiseRanker(ModelConfig(**config["model"]), TrainConfig(**config["train"]), total_steps=1)
    state = torch.load(directory / WEIGHTS, map_location=map_location, weights_only=True)
    module.load_state_dict(state)
    return module.eval(), config
