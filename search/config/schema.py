"""Checking YAML values against the typed fields of the config sections (used by search/config/parse.py
and search/config/space.py alike). Imports nothing from the project."""

from __future__ import annotations

import typing
from typing import Any, Literal


def coerce(value: Any, annotation: Any) -> tuple[Any, str | None]:
    """Check (and lightly coerce) a YAML value against a field annotation; (value, problem)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        if value is None and type(None) in args:
            return None, None
        inner = [a for a in args if a is not type(None)]
        return coerce(value, inner[0])
    if origin is Literal:
        if value in args:
            return value, None
        return value, f"must be one of {list(args)}, got {value!r}"
    if annotation is bool:
        return (value, None) if isinstance(value, bool) else (value, f"must be true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value, None
        if isinstance(value, float) and value.is_integer():
            return int(value), None
        return value, f"must be an integer, got {value!r}"
    if annotation is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
            try:
                return float(value), None
            except ValueError:
                pass
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value), None
        return value, f"must be a number, got {value!r}"
    if annotation is str:
        return (value, None) if isinstance(value, str) else (value, f"must be a string, got {value!r}")
    if annotation in (dict, list):
        ok = isinstance(value, annotation)
        return value, None if ok else f"must be a {'mapping' if annotation is dict else 'list'}, got {value!r}"
    return value, None


def field_types(cls: type) -> dict[str, Any]:
    """{field name: annotation} of a config dataclass, annotations resolved."""
    return typing.get_type_hints(cls)
