"""The YAML config: four typed sections, validated together before anything expensive runs.

    data:   DataConfig   (data/config.py)
    model:  ModelConfig  (model/config.py)
    train:  TrainConfig  (model/config.py)
    search: SearchConfig (below)

Every problem is collected and reported at once, each naming the file and the key. An exported best
config is the same schema with every value fixed, so it feeds straight back into `pairtune train`.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from data.config import DataConfig
from model.config import ModelConfig, TrainConfig
from model.metrics import METRIC_MODES, SCORED_METRICS
from search.config.schema import coerce, field_types
from search.config.space import apply_fixed_values, possible_values, space_problems


@dataclass
class SearchConfig:
    name: str = "pairtune"
    """Run name: results go to storage_path/name."""
    storage_path: str = "~/pairtune_results"
    """Where experiments are written (local directory, or s3:// / gs:// for clusters)."""
    metric: str = "val/agreement"
    """What the search optimises: val/agreement (pairwise agreement on the validation fold), val/loss,
    or, for scored data (data.format scores/labels), val/pearson or val/spearman."""
    mode: str | None = None
    """Derived from the metric: max for agreement and correlations, min for val/loss. null (the
    default) = the metric's mode; a mode that contradicts the metric is rejected."""
    num_samples: int = 8
    """Trials to run."""
    max_concurrent_trials: int = 2
    """Trials running at once (also bounded by the cluster's CPUs and GPUs)."""
    cpus_per_trial: float = 1.0
    """CPUs each trial reserves; also its torch thread count."""
    gpus_per_trial: float = 0.0
    """GPUs each trial reserves: 0, a fraction (0.5 packs two trials on a GPU), 1, or a whole N > 1:
    then each trial is a Ray Train data-parallel (DDP) run over N GPUs, one worker each (search/tune/ddp.py)."""
    workers_per_trial: int | None = None
    """Data-parallel processes per trial; null = one per GPU when gpus_per_trial > 1, else 1. Set it
    with gpus_per_trial 0 for DDP over CPU processes (gloo), each with cpus_per_trial / N CPUs."""
    searcher: Literal["optuna", "random"] = "optuna"
    """optuna: TPE (multivariate, seeded); random: Optuna's random sampler."""
    scheduler: Literal["asha", "fifo"] = "asha"
    """asha: stop weak trials early at rungs; fifo: run every trial to the end."""
    seed: int = 0
    """Seed of the searcher."""
    n_startup_trials: int = 4
    """Random trials before TPE starts modelling."""
    time_attr: Literal["epoch", "seconds"] = "epoch"
    """What ASHA's rungs (and grace_period) count: epoch (fractional epochs trained) or seconds (the
    trial's wall time, start-up included: time/wall_s), to compare trials of backbones of different
    speeds at equal time rather than at equal epochs."""
    grace_period: float = 1.0
    """Epochs (or seconds, with time_attr: seconds) every trial runs before ASHA may stop it."""
    reduction_factor: float = 2.0
    """ASHA keeps the top 1/reduction_factor of trials at each rung."""
    max_failures: int = 2
    """Retries of a trial that fails (a lost node, a crash), each from its latest checkpoint."""
    time_budget_s: float | None = None
    """End the whole search after this many seconds; null = no limit."""
    target: float | None = None
    """End the whole search as soon as a trial's validation metric reaches this; null = never."""
    epoch_budget: float | None = None
    """End the whole search once all trials together have trained this many epochs; null = no limit."""
    stopped_trials: Literal["pruned", "rung", "stock"] = "pruned"
    """What Optuna is told of a trial ASHA stopped: pruned (with its value at each rung reached), rung
    (every trial's value at the first rung), or stock (Ray's: complete with its early value)."""
    reuse_trial_processes: bool = True
    """Start a trial in the process of one that ended (when both take the same resources), so only the
    first trials of a search pay for importing torch, transformers and Lightning; false = a fresh process
    for each trial. Data-parallel trials (workers_per_trial > 1) always start fresh workers."""
    baseline: bool = True
    """Fit the TF-IDF + ridge baseline on the fold before the search (seconds) and show it in the summary."""
    tracking: dict = field(default_factory=dict)
    """Trackers besides TensorBoard (always on): {wandb: {project: ...}, mlflow: {}}; see search/tune/tracking.py."""
    space: dict = field(default_factory=dict)
    """Searched keys: `section.key: {loguniform|uniform|int|choice: ...}` or a fixed value."""
    points_to_evaluate: list = field(default_factory=list)
    """First trials to run, as {section.key: value} (e.g. a known good config)."""
    warm_start: str | None = None
    """An earlier search's run (directory or s3:// / gs:// URI) to start from: its completed trials seed
    TPE over the keys both spaces share (trials with a value outside this space are left out, and
    counted), and its best runs first after points_to_evaluate. Same metric only; null = a cold start."""

    def __post_init__(self):
        if self.mode is None:
            self.mode = METRIC_MODES.get(self.metric)  # None for an unknown metric: problems() names it

    def problems(self) -> list[tuple[str, str]]:
        out = []
        if self.metric not in METRIC_MODES:
            out.append(("metric", f"must be one of {list(METRIC_MODES)}, got {self.metric!r}"))
        elif self.mode != METRIC_MODES[self.metric]:
            better = "higher" if METRIC_MODES[self.metric] == "max" else "lower"
            out.append(("mode", f"{self.metric} is better when {better}, so mode must be {METRIC_MODES[self.metric]!r}, got {self.mode!r}"))
        for key in ("num_samples", "max_concurrent_trials", "cpus_per_trial", "grace_period"):
            if getattr(self, key) <= 0:
                out.append((key, f"must be positive, got {getattr(self, key)}"))
        if self.gpus_per_trial < 0:
            out.append(("gpus_per_trial", f"must not be negative, got {self.gpus_per_trial}"))
        elif self.gpus_per_trial > 1 and self.gpus_per_trial != int(self.gpus_per_trial):
            out.append(("gpus_per_trial", f"above 1 must be a whole number of GPUs (one per DDP worker), got {self.gpus_per_trial}"))
        if self.workers_per_trial is not None:
            n = self.workers_per_trial
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                out.append(("workers_per_trial", f"must be a whole number >= 1 or null, got {n!r}"))
            elif n > 1 and self.gpus_per_trial not in (0, n):
                message = f"{n} DDP workers take one GPU each, so gpus_per_trial must be 0 or {n}, got {self.gpus_per_trial:g}"
                out.append(("workers_per_trial", message))
            elif n > 1 and self.cpus_per_trial < n:
                out.append(("cpus_per_trial", f"{self.cpus_per_trial:g} CPUs for {n} DDP workers: each needs at least one"))
        if self.reduction_factor <= 1:
            out.append(("reduction_factor", f"must be greater than 1, got {self.reduction_factor}"))
        for key in ("time_budget_s", "epoch_budget"):
            if getattr(self, key) is not None and getattr(self, key) <= 0:
                out.append((key, f"must be positive or null, got {getattr(self, key)}"))
        low, high = (0.0, float("inf")) if self.metric == "val/loss" else (-1.0, 1.0)
        if self.target is not None and not low < self.target <= high:
            out.append(("target", f"is a {self.metric} value, in ({low:g}, {high:g}] (or null), got {self.target}"))
        if self.max_failures < 0:
            out.append(("max_failures", f"must not be negative, got {self.max_failures}"))
        if self.warm_start is not None and (not isinstance(self.warm_start, str) or not self.warm_start.strip()):
            out.append(("warm_start", f"must be a run directory or URI (or null), got {self.warm_start!r}"))
        if self.n_startup_trials < 0:
            out.append(("n_startup_trials", f"must not be negative, got {self.n_startup_trials}"))
        from search.config.tracking import tracking_problems

        out += tracking_problems(self.tracking)
        return out


SECTIONS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig, "search": SearchConfig}


class ConfigError(Exception):
    """One or more configuration problems; str() lists them one per line."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class PairtuneConfig:
    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    search: SearchConfig
    source: str = "<config>"  # the file it came from, for messages; not part of the schema

    def to_dict(self) -> dict:
        out = {name: dataclasses.asdict(getattr(self, name)) for name in SECTIONS}
        if out["search"]["mode"] == METRIC_MODES.get(self.search.metric):
            out["search"]["mode"] = None  # derived from the metric, so an exported config does not pin it
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def get(self, key: str) -> Any:
        section, name = key.split(".", 1)
        return getattr(getattr(self, section), name)


def build_section(cls: type, raw: Any, section: str) -> tuple[Any, list[tuple[str, str]]]:
    """A dataclass instance from a YAML mapping, and (key, problem) pairs; defaults fill gaps."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        return cls(), [(section, f"must be a mapping of keys, got {raw!r}")]
    types = field_types(cls)
    values, problems = {}, []
    for key, value in raw.items():
        if key not in types:
            hint = difflib.get_close_matches(str(key), list(types), n=1)
            problems.append((f"{section}.{key}", "unknown key" + (f"; did you mean '{section}.{hint[0]}'?" if hint else "")))
            continue
        coerced, problem = coerce(value, types[key])
        if problem:
            problems.append((f"{section}.{key}", problem))
        else:
            values[key] = coerced
    instance = cls(**values)  # keys that failed their type check keep their (valid) defaults
    problems += [(f"{section}.{k}", msg) for k, msg in instance.problems()]
    return instance, problems


def parse_config(raw: Any, source: str = "<config>") -> PairtuneConfig:
    """Validate a whole config mapping; raise ConfigError listing every problem."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([f"{source}: the config must be a mapping with sections {list(SECTIONS)}"])
    problems: list[tuple[str, str]] = []
    for key in raw:
        if key not in SECTIONS:
            hint = difflib.get_close_matches(str(key), list(SECTIONS), n=1)
            problems.append((str(key), "unknown section" + (f"; did you mean '{hint[0]}'?" if hint else "")))
    built = {}
    for name, cls in SECTIONS.items():
        built[name], found = build_section(cls, raw.get(name), name)
        problems += found
    cfg = apply_fixed_values(PairtuneConfig(**built, source=source))
    problems += space_problems(cfg)
    problems += cross_section_problems(cfg)  # every problem at once: keys that failed kept their defaults
    if problems:
        raise ConfigError([f"{source}: {key}: {msg}" for key, msg in problems])
    return cfg


def cross_section_problems(cfg: PairtuneConfig) -> list[tuple[str, str]]:
    """Rules that tie keys of different sections together (over every value the search can sample)."""
    out = []
    if cfg.data.format == "pairs" and "mse" in possible_values(cfg, "train.loss"):
        out.append(("train.loss", ("mse regresses each text's score, so it needs data.format scores or labels, "
                                   "but data.format is pairs")))
    if cfg.data.format == "pairs" and cfg.search.metric in SCORED_METRICS:
        out.append(("search.metric", (f"{cfg.search.metric} correlates predicted with true scores, so it needs "
                                      "data.format scores or labels, but data.format is pairs")))
    return out


def apply_overrides(raw: dict, overrides: dict[str, Any]) -> dict:
    """A copy of the raw mapping with dotted keys set (search.space keys are kept whole)."""
    raw = copy.deepcopy(raw)
    for key, value in overrides.items():
        section, name = key.split(".", 1)
        target = raw.setdefault(section, {})
        if not isinstance(target, dict):
            raise ConfigError([f"--set {key}: section '{section}' is not a mapping"])
        if section == "search" and "." in name:  # search.space.train.lr={...}
            sub, rest = name.split(".", 1)
            target = target.setdefault(sub, {})
            name = rest
        target[name] = value
    return raw


def with_params(cfg: PairtuneConfig, params: dict[str, Any]) -> PairtuneConfig:
    """The config with sampled `section.key` values put in; revalidated like the file was."""
    raw = apply_overrides(cfg.to_dict(), params)
    raw["search"]["space"], raw["search"]["points_to_evaluate"] = {}, []
    return parse_config(raw, cfg.source)
