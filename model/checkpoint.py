"""Saving and loading a trained ranker: weights (loaded with weights_only=True) plus its config.

A model directory holds:

    model.pt       the ranker's state dict (encoder + head), plain tensors
    config.yaml    the full config (the CLI's schema) that trained it
    metrics.json   what it scored (or, for a model trained on all votes, what it was trained on)
    encoder/       the encoder's Hugging Face config.json and its tokenizer files (final models
                   from `pairtune train`), so the directory loads without the original backbone

A fold ensemble directory holds fold_K/ model directories and ensemble.json, whose "folds" mapping
(fold number -> its validation results) names the members.

Search checkpoints leave out `encoder/` (they are written at every new best validation); they load
through the backbone named in config.yaml instead.

Loading checks every file and raises CheckpointError, one line naming the file, for anything that is
not a readable pairtune model; torch's own messages are not passed on (for a damaged file they
suggest loading with weights_only=False, which would run arbitrary code from an untrusted file).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import yaml

from model.config import ModelConfig, TrainConfig

if TYPE_CHECKING:
    from model.ranker import PairwiseRanker

WEIGHTS = "model.pt"
CONFIG = "config.yaml"
METRICS = "metrics.json"
ENCODER = "encoder"  # encoder config + tokenizer files
# A fold ensemble (`pairtune train --folds`) is a directory of FOLD_DIR model directories; its members
# are the folds listed in ENSEMBLE, which is written after the last fold is trained.
FOLD_DIR = "fold_{}"
ENSEMBLE = "ensemble.json"


class CheckpointError(Exception):
    """A model directory file that cannot be read as part of a pairtune model."""


def _damaged(path: Path, why: str) -> CheckpointError:
    return CheckpointError(f"{path} is damaged or not a pairtune model ({why})")


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
    return not missing_files(directory)


def _encoder_from_config(path: Path, pooler: bool = False):
    """The encoder's architecture from its saved config, with no pretrained weights (model.pt has them);
    with its pooler when the ranker reads it (model.pooling pooler)."""
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(path, local_files_only=True)
    if pooler:
        return AutoModel.from_config(config, add_pooling_layer=True)
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
        try:
            return AutoTokenizer.from_pretrained(local, local_files_only=True)
        except (OSError, ValueError):
            raise _damaged(local, "its tokenizer files cannot be read") from None
    return load_tokenizer(config["model"]["backbone"])


def missing_files(directory: str | Path) -> list[str]:
    """The files of a model directory (model.pt, config.yaml) that `directory` lacks."""
    return [name for name in (WEIGHTS, CONFIG) if not (Path(directory) / name).is_file()]


def read_config(directory: str | Path) -> dict:
    """The config mapping a model was trained with, checked for what loading and scoring read."""
    path = Path(directory) / CONFIG
    if not path.is_file():
        raise CheckpointError(f"{path}: not found; {directory} is not a complete pairtune model directory")
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError):
        raise _damaged(path, "not valid YAML") from None
    if not isinstance(config, dict) or not all(isinstance(config.get(s), dict) for s in ("data", "model", "train")):
        raise _damaged(path, "expected a mapping with data, model and train sections")
    for section, cls in (("model", ModelConfig), ("train", TrainConfig)):
        unknown = sorted(set(config[section]) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise _damaged(path, f"unknown keys {', '.join(f'{section}.{k}' for k in unknown)}")
    missing = [f"data.{k}" for k in ("max_length", "lowercase") if k not in config["data"]]
    if missing:
        raise _damaged(path, f"missing {', '.join(missing)}")
    return config


def _read_weights(path: Path, map_location: str) -> dict:
    if not path.is_file():
        raise CheckpointError(f"{path}: not found; {path.parent} is not a complete pairtune model directory")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except MemoryError:
        raise
    except Exception:  # noqa: BLE001 (what torch.load raises for a damaged file is open-ended)
        raise _damaged(path, "empty file" if path.stat().st_size == 0 else "not a readable PyTorch weights file") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in state.items()):
        raise _damaged(path, "not a state dict of named tensors")
    return state


def _mismatch(module: torch.nn.Module, state: dict) -> str | None:
    """How the saved tensors differ from the module's, in a few words; None when they fit."""
    expected = module.state_dict()
    problems = {
        "missing": [k for k in expected if k not in state],
        "unexpected": [k for k in state if k not in expected],
        "of the wrong shape": [k for k in expected if k in state and state[k].shape != expected[k].shape],
    }
    found = [f"{len(keys)} {what} ({keys[0]}{', ...' if len(keys) > 1 else ''})" for what, keys in problems.items() if keys]
    return "; ".join(found) or None


def load_checkpoint(directory: str | Path, map_location: str = "cpu") -> tuple[PairwiseRanker, dict]:
    """The ranker saved in `directory` (in eval mode) and the config mapping it was trained with;
    CheckpointError naming the file when one is damaged or does not fit the others."""
    from model.ranker import PairwiseRanker  # Lightning: imported when a model is loaded, not with the CLI

    directory = Path(directory)
    config = read_config(directory)
    encoder = None
    if (directory / ENCODER / "config.json").exists():
        try:
            encoder = _encoder_from_config(directory / ENCODER, config["model"].get("pooling") == "pooler")
        except (OSError, ValueError, KeyError, TypeError):
            raise _damaged(directory / ENCODER / "config.json", "not a readable encoder config") from None
    module = PairwiseRanker(ModelConfig(**config["model"]), TrainConfig(**config["train"]), total_steps=1, encoder=encoder)
    state = _read_weights(directory / WEIGHTS, map_location)
    mismatch = _mismatch(module, state)
    if mismatch:
        raise _damaged(directory / WEIGHTS, f"its tensors do not fit the model in {CONFIG}: {mismatch}")
    module.load_state_dict(state)
    return module.eval(), config
