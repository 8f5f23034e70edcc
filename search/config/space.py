"""The search space, written in YAML over any config key:

    search:
      space:
        train.lr: {loguniform: [1.0e-5, 1.0e-3]}
        train.margin: {uniform: [0.1, 1.0]}
        train.epochs: {int: [1, 3]}
        train.batch_size: {choice: [16, 32]}
        model.dropout: 0.1               # a fixed value

Each dimension is checked against the key's type and the section's rules at its bounds and choices,
so a range that could sample an invalid value is rejected before the search starts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from search.config.schema import coerce, field_types

if TYPE_CHECKING:
    from search.config.parse import PairtuneConfig

# The sections a search may vary (search.* itself is not searchable); each is a dataclass field of
# PairtuneConfig, whose class is read from the config itself.
SEARCHABLE = ("data", "model", "train")
KINDS = ("loguniform", "uniform", "int", "logint", "choice", "fixed")
# Keys that change tokenisation: each value is tokenised up front, so they cannot be continuous.
TOKENISATION_KEYS = ("model.backbone", "data.lowercase")


@dataclass(frozen=True)
class Dimension:
    key: str
    kind: str
    low: Any = None
    high: Any = None
    choices: tuple = ()

    def candidates(self) -> list:
        """The values that bound what this dimension can sample."""
        return list(self.choices) if self.kind in ("choice", "fixed") else [self.low, self.high]

    def to_optuna(self):
        import optuna.distributions as d

        if self.kind in ("loguniform", "uniform"):
            return d.FloatDistribution(float(self.low), float(self.high), log=self.kind == "loguniform")
        if self.kind in ("int", "logint"):
            return d.IntDistribution(int(self.low), int(self.high), log=self.kind == "logint")
        return d.CategoricalDistribution(list(self.choices))


def parse_dimension(key: str, spec: Any) -> tuple[Dimension | None, str | None]:
    if isinstance(spec, list):
        return None, f"a bare list is ambiguous: write {{choice: {spec}}} or {{loguniform: [low, high]}}"
    if not isinstance(spec, dict):
        return Dimension(key, "fixed", choices=(spec,)), None
    if len(spec) != 1 or next(iter(spec)) not in KINDS:
        return None, f"expected one of {{{', '.join(KINDS)}: ...}}, got {spec!r}"
    kind, arg = next(iter(spec.items()))
    if kind == "fixed":
        return Dimension(key, "fixed", choices=(arg,)), None
    if kind == "choice":
        if not isinstance(arg, list) or not arg:
            return None, "choice needs a non-empty list of options"
        return Dimension(key, "choice", choices=tuple(arg)), None
    if not isinstance(arg, list) or len(arg) != 2:
        return None, f"{kind} needs [low, high], got {arg!r}"
    low, high = arg
    for bound in (low, high):
        if isinstance(bound, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
            try:
                float(bound)
            except ValueError:
                return None, f"{kind} bounds must be numbers, got {bound!r}"
        elif isinstance(bound, bool) or not isinstance(bound, (int, float)):
            return None, f"{kind} bounds must be numbers, got {bound!r}"
    low, high = float(low), float(high)
    if kind in ("int", "logint") and not (low.is_integer() and high.is_integer()):
        return None, f"{kind} bounds must be integers, got [{low}, {high}]"
    if low > high:
        return None, f"low {low:g} is greater than high {high:g}"
    if kind in ("loguniform", "logint") and low <= 0:
        return None, f"a log range must be above 0, got [{low:g}, {high:g}]"
    if kind in ("int", "logint"):
        low, high = int(low), int(high)
    return Dimension(key, kind, low, high), None


def _check_value(cfg: PairtuneConfig, key: str, value: Any) -> str | None:
    """Problem with setting `key` to `value` in cfg, judged by the section's own rules."""
    section, name = key.split(".", 1)
    coerced, problem = coerce(value, field_types(type(getattr(cfg, section)))[name])
    if problem:
        return f"value {value!r} {problem}"
    instance = dataclasses.replace(getattr(cfg, section), **{name: coerced})
    for k, msg in instance.problems():
        if k == name:
            return f"value {value!r}: {msg}"
    return None


def parse_space(cfg: PairtuneConfig) -> tuple[list[Dimension], list[tuple[str, str]]]:
    """Dimensions of cfg.search.space, and (key, problem) pairs naming search.space.<key>."""
    dims, problems = [], []
    for key, spec in cfg.search.space.items():
        where = f"search.space.{key}"
        section, _, name = str(key).partition(".")
        if section not in SEARCHABLE or name not in field_types(type(getattr(cfg, section))):
            problems.append((where, "not a searchable key (use data.*, model.* or train.* keys)"))
            continue
        dim, problem = parse_dimension(key, spec)
        if problem:
            problems.append((where, problem))
            continue
        if key in TOKENISATION_KEYS and dim.kind not in ("choice", "fixed"):
            problems.append((where, "changes tokenisation, so it must be a choice or a fixed value"))
            continue
        for value in dim.candidates():
            problem = _check_value(cfg, key, value)
            if problem:
                problems.append((where, problem))
                break
        else:
            dims.append(dim)
    return dims, problems


def space_problems(cfg: PairtuneConfig) -> list[tuple[str, str]]:
    dims, problems = parse_space(cfg)
    searched = {d.key for d in dims}
    for i, point in enumerate(cfg.search.points_to_evaluate):
        where = f"search.points_to_evaluate[{i}]"
        if not isinstance(point, dict):
            problems.append((where, f"must be a mapping of section.key: value, got {point!r}"))
            continue
        for key, value in point.items():
            if key not in searched:
                problems.append((f"{where}.{key}", f"not a key of search.space (searched: {sorted(searched)})"))
            else:
                problem = _check_value(cfg, key, value)
                if problem:
                    problems.append((f"{where}.{key}", problem))
    return problems


def searched_dimensions(cfg: PairtuneConfig) -> list[Dimension]:
    return [d for d in parse_space(cfg)[0] if d.kind != "fixed"]


def fixed_values(cfg: PairtuneConfig) -> dict[str, Any]:
    return {d.key: d.choices[0] for d in parse_space(cfg)[0] if d.kind == "fixed"}


def apply_fixed_values(cfg: PairtuneConfig) -> PairtuneConfig:
    """cfg with every fixed value of its search space written into its section, so that every trial,
    the scheduler's epochs, `check` and the exported best config see the same value. Only values that
    passed their key's checks are applied (parse_space drops the others and reports them)."""
    changes: dict[str, dict[str, Any]] = {}
    for key, value in fixed_values(cfg).items():
        section, name = key.split(".", 1)
        coerced, _ = coerce(value, field_types(type(getattr(cfg, section)))[name])
        changes.setdefault(section, {})[name] = coerced
    if not changes:
        return cfg
    return dataclasses.replace(cfg, **{s: dataclasses.replace(getattr(cfg, s), **v) for s, v in changes.items()})


def possible_values(cfg: PairtuneConfig, key: str) -> list:
    """Every value `key` can take in this search (for keys that must be enumerable)."""
    for d in parse_space(cfg)[0]:
        if d.key == key:
            return list(d.choices) if d.kind in ("choice", "fixed") else [d.low, d.high]
    return [cfg.get(key)]
