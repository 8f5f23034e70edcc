"""Reading a config file: YAML, `--set section.key=value` overrides, paths relative to the file, then
parse_config (search/config/parse.py); a bad key reports the data file's problems too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from data.config import DataConfig
from search.config.parse import SECTIONS, ConfigError, PairtuneConfig, apply_overrides, build_section, parse_config


def parse_set(items: list[str]) -> dict[str, Any]:
    """`--set train.lr=3e-4` items as {"train.lr": 3e-4}; values are read as YAML. An empty value is
    refused rather than read as null (a forgotten value, or a shell variable that was not set)."""
    out, problems = {}, []
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or "." not in key:
            problems.append(f"--set {item}: expected section.key=value, e.g. train.lr=3e-4")
        elif not text.strip():
            problems.append(f"--set {item}: no value; write {key.strip()}=null for null")
        else:
            try:
                out[key.strip()] = yaml.safe_load(text)
            except yaml.YAMLError as e:
                problems.append(f"--set {item}: the value is not valid YAML ({getattr(e, 'problem', None) or e}); "
                                "quote it to pass a string")
    if problems:
        raise ConfigError(problems)
    return out


def resolve_paths(raw: dict, base: Path) -> None:
    data = raw.get("data")
    if isinstance(data, dict) and isinstance(data.get("pairs"), str) and data["pairs"] != "demo":
        p = Path(data["pairs"]).expanduser()
        if not p.is_absolute() and (base / p).exists():
            data["pairs"] = str((base / p).resolve())
    search = raw.get("search")
    if isinstance(search, dict) and isinstance(search.get("warm_start"), str) and "://" not in search["warm_start"]:
        p = Path(search["warm_start"]).expanduser()
        if not p.is_absolute() and (base / p).exists():  # as data.pairs: beside the file when it is there
            search["warm_start"] = str((base / p).resolve())
    model = raw.get("model")
    if isinstance(model, dict) and isinstance(model.get("backbone"), str):
        p = Path(model["backbone"]).expanduser()
        if not p.is_absolute() and model["backbone"].startswith(".") and (base / p).exists():
            model["backbone"] = str((base / p).resolve())


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError([f"{path}: config file not found"])
    if path.is_dir():
        raise ConfigError([f"{path}: is a directory, expected a YAML config file (see configs/)"])
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        line = f" (line {where.line + 1})" if where else ""
        raise ConfigError([f"{path}: not valid YAML{line}: {getattr(e, 'problem', e)}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: not valid UTF-8"]) from None
    return raw if raw is not None else {}


def load_config(path: str | Path, overrides: list[str] | None = None) -> PairtuneConfig:
    """Read, override (`--set`), resolve paths relative to the file, and validate a config."""
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError([f"{path}: the config must be a mapping with sections {list(SECTIONS)}"])
    if overrides:
        raw = apply_overrides(raw, parse_set(overrides))
    resolve_paths(raw, Path(path).resolve().parent)
    source = str(path) + (" (with --set)" if overrides else "")
    try:
        return parse_config(raw, source)
    except ConfigError as e:  # a bad key elsewhere must not hide bad rows: report the data's problems too
        raise ConfigError(e.problems + _data_problems(raw.get("data"))) from None


def _data_problems(raw_data: Any) -> list[str]:
    """Problems with the data file of a data section that is itself valid (none otherwise)."""
    from data.scores import data_problems

    data, problems = build_section(DataConfig, raw_data, "data")
    return [] if problems else data_problems(data)
