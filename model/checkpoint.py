"""Saving and loading a trained ranker: weights (loaded with weights_only=True) plus its config.

A model directory holds:

    model.pt       the ranker's state dict (encoder + head), plain tensors
    config.yaml    the full config (the CLI's schema) that trained it
    metrics.json   what it scored (or, for a model trained on all votes, what it was trained on)
    encoder/       the encoder's Hugging Face config.json and its tokenizer files (final models
                   from `pairtune train`), so the directory loads without the original backbone

Search checkpoints leave out `encoder/` (they are written at every new best validation); they load
through the backbone named in config.yaml instead.
"""

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
ENCODER = "encoder"  # encoder config + tokenizer files


def save_checkpoint(
    directory: str | Path, module: PairwiseRanker, config: dict, metrics: dict, tokenizer=None
) -> Path:
    """config: the full config mapping (the CLI's schema) that produced the model. With a tokenizer,
    the directory also gets encoder/ (encoder config + tokenizer), which makes it self-contained."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    torch.save(state, directory / WEIGHTS)
    (directory / CONFIG).write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    (directory / METRICS).write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    if tokenizer is not None:
        module.encoder.config.save_pretrained(directory / ENCODER)
        tokenizer.save_pretrained(directory / ENCODER)
    return directory


def is_model_dir(directory: str | Path) -> bool:
    directory = Path(directory)
    return (directory / WEIGHTS).is_file() and (directory / CONFIG).is_file()


def _encoder_from_config(path: Path):
    """The encoder's architecture from its saved config, with no pretrained weights (model.pt has them)."""
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(path, local_files_only=True)
    try:
        return AutoModel.from_config(config, add_pooling_layer=False)
    except TypeError:  # architectures without a pooler do not take the argument
        return AutoModel.from_config(config)


def load_tokenizer_for(directory: str | Path, config: dict):
    """The model directory's own tokenizer (encoder/), else the backbone's."""
    from transformers import AutoTokenizer

    from model.backbone import load_tokenizer

    local = Path(directory) / ENCODER
    if (local / "config.json").exists():
        return AutoTokenizer.from_pretrained(local, local_files_only=True)
    return load_tokenizer(config["model"]["backbone"])


def load_checkpoint(directory: str | Path, map_location: str = "cpu") -> tuple[PairwiseRanker, dict]:
    """The ranker saved in `directory` (in eval mode) and the config mapping it was trained with."""
    directory = Path(directory)
    config = yaml.safe_load((directory / CONFIG).read_text(encoding="utf-8"))
    encoder = _encoder_from_config(directory / ENCODER) if (directory / ENCODER / "config.json").exists() else None
    module = PairwiseRanker(ModelConfig(**config["model"]), TrainConfig(**config["train"]), total_steps=1, encoder=encoder)
    state = torch.load(directory / WEIGHTS, map_location=map_location, weights_only=True)
    module.load_state_dict(state)
    return module.eval(), config
