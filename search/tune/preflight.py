"""Everything checked before a search starts, so that a bad config, backbone, machine or storage path
fails in seconds with every problem named, before Ray starts or data is read:

    preflight(cfg)   the checks that need more than the YAML: backbones on disk, precision against the
                     trials' hardware, this machine's resources, the storage path, the trackers
    dry_run(cfg)     preflight, then the data preparation: what `pairtune check` (and `pairtune search
                     --dry-run`) runs; describe() is what it prints
"""

from __future__ import annotations

import os

from data.prepare import PreparedData
from model.backbone import BackboneError, pooler_problem, resolve_backbone
from search.config.parse import ConfigError, PairtuneConfig
from search.config.space import fixed_values, possible_values, searched_dimensions
from search.runs import storage
from search.runs.layout import run_dir
from search.tune.cluster import cluster_address
from search.tune.ddp import workers_per_trial
from search.tune.prepare import prepare_data
from search.tune.scheduler import late_rungs
from search.tune.tracking import environment_problems


def backbone_positions(path: str) -> int | None:
    """Longest input the backbone takes, from its config; None when unknown (e.g. a hub id offline)."""
    from transformers import AutoConfig

    try:  # local files only: a preflight check must not wait on a model hub
        config = AutoConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError):
        return None
    positions = getattr(config, "max_position_embeddings", None)
    if positions and getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
        positions -= 2  # RoBERTa-style models offset positions by the padding index
    return positions

def local_resource_problems(cfg: PairtuneConfig) -> list[str]:
    """Trial resources the local Ray instance (this machine) can never give."""
    import torch

    s, out = cfg.search, []
    cpus, gpus = os.cpu_count() or 1, torch.cuda.device_count() if torch.cuda.is_available() else 0
    if s.cpus_per_trial > cpus:
        out.append(f"{cfg.source}: search.cpus_per_trial: {s.cpus_per_trial:g} CPUs per trial, but this machine has {cpus}")
    if s.gpus_per_trial > gpus:
        out.append(
            f"{cfg.source}: search.gpus_per_trial: {s.gpus_per_trial:g} GPUs per trial, but this machine has {gpus}; "
            "set it to 0 or run on a cluster (--address)"
        )
    return out

def storage_problems(cfg: PairtuneConfig) -> list[str]:
    """A local storage_path must be a directory this process can create and write (s3:// / gs:// are
    first written when the run directory is claimed, still before Ray starts)."""
    where = storage.location(cfg.search.storage_path)
    why = storage.probe_writable(where)
    return [f"{cfg.source}: search.storage_path: cannot create {where} and write there ({why})"] if why else []

def preflight(cfg: PairtuneConfig, local_cluster: bool = False) -> None:
    """Checks that need more than the YAML (backbones on disk, precision vs trial hardware, and with
    local_cluster, whether this machine can run a trial at all)."""
    problems = local_resource_problems(cfg) if local_cluster else []
    problems += storage_problems(cfg)
    problems += [f"{cfg.source}: {p}" for p in environment_problems(cfg.search.tracking)]
    longest = max(possible_values(cfg, "data.max_length"))
    pooler = "pooler" in possible_values(cfg, "model.pooling")
    for backbone in possible_values(cfg, "model.backbone"):
        try:
            positions = backbone_positions(resolve_backbone(backbone))
        except BackboneError as e:
            problems.append(f"{cfg.source}: model.backbone: {e}")
            continue
        if positions is not None and longest > positions:
            problems.append(
                f"{cfg.source}: data.max_length: {longest} tokens, but backbone {backbone} has {positions} positions"
            )
        if pooler and (problem := pooler_problem(backbone)):
            problems.append(f"{cfg.source}: model.pooling: pooler: {problem}")
    for precision in possible_values(cfg, "train.precision"):
        if precision == "16-mixed" and cfg.search.gpus_per_trial == 0:
            problems.append(
                f"{cfg.source}: train.precision: 16-mixed needs GPU trials but search.gpus_per_trial is 0; "
                "use auto (fp16 on GPUs, fp32 on CPUs) or 32-true"
            )
    problems += [f"{cfg.source}: search.warm_start: {p}" for p in warm_start_problems(cfg)]
    if problems:
        raise ConfigError(problems)


def warm_start_problems(cfg: PairtuneConfig) -> list[str]:
    """The earlier run must be a search run with a study, completed trials, and the same metric."""
    run = cfg.search.warm_start
    if run is None:
        return []
    from search.runs import study
    from search.runs.layout import load_run_config

    run = storage.location(run)
    try:
        trials = study.completed_trials(run)
        earlier = load_run_config(run).search.metric
    except (FileNotFoundError, OSError, ConfigError) as e:
        return [str(e).splitlines()[0]]
    if earlier != cfg.search.metric:
        return [f"{run} searched {earlier}, this search {cfg.search.metric}: their values cannot seed each other"]
    if not trials:
        return [f"{run} has no completed trial to start from"]
    return []


def dry_run(cfg: PairtuneConfig, address: str | None = None) -> PreparedData:
    """Validate config, backbones, resources and data exactly as `search` would; raises on problems."""
    preflight(cfg, local_cluster=cluster_address(address) is None)  # inside a Ray job: RAY_ADDRESS
    return prepare_data(cfg)


def describe(cfg: PairtuneConfig, prepared: PreparedData) -> str:
    d, s = prepared.summary(), cfg.search
    if d.get("format", "pairs") == "pairs":
        data_lines = [
            f"votes:        {d['votes']} over {d['unique_texts']} unique texts ({d['identical_rows_dropped']} rows with identical texts dropped)",
            (f"fold:         {d['fold']} of {d['folds']} ({d['split_method']} split): {d['train_votes']} train votes, "
             f"{d['val_votes']} validation votes, {d['votes_dropped_crossing_folds']} votes dropped crossing folds, "
             f"{d['texts_merged_same_input']} texts kept in the fold of a text the model sees identically"),
        ]
    else:
        data_lines = [
            f"texts:        {d['unique_texts']} unique texts (data.format {d['format']}), split by {d['split_method']} before pairs are derived",
            (f"fold:         {d['fold']} of {d['folds']}: {d['train_texts']} train texts ({d['train_votes']} derived pairs), "
             f"{d['val_texts']} validation texts ({d['val_votes']} derived pairs)"),
        ]
    lines = [
        f"config:       {cfg.source}",
        f"data:         {d['source']}",
        *data_lines,
        f"tokenised:    {len(prepared.tokens)} variant(s) (backbone x lowercase), max_length {max(t.max_length for t in prepared.tokens.values())}",
        f"trials:       {s.num_samples}, {s.max_concurrent_trials} at a time, {s.cpus_per_trial:g} CPU + {s.gpus_per_trial:g} GPU each"
        + (f", as a data-parallel (DDP) run of {workers_per_trial(s)} workers" if workers_per_trial(s) > 1 else ""),
        f"searcher:     {s.searcher} (seed {s.seed}), scheduler {s.scheduler}"
        + (f" (grace {s.grace_period:g} {'seconds' if s.time_attr == 'seconds' else 'epochs'}, reduction factor "
           f"{s.reduction_factor:g})" if s.scheduler == "asha" else "")
        + (f"; warm start from {s.warm_start} (its completed trials that fit this space, its best first)" if s.warm_start else ""),
        f"results:      {run_dir(cfg)}",
        "search space:",
    ]
    dims = searched_dimensions(cfg)
    for dim in dims:
        span = list(dim.choices) if dim.kind == "choice" else [dim.low, dim.high]
        lines.append(f"  {dim.key}: {dim.kind} {span}")
    for key, value in fixed_values(cfg).items():
        lines.append(f"  {key}: fixed {value!r}")
    if not dims:
        lines.append("  (nothing searched: every trial runs the same config)")
    for i, point in enumerate(s.points_to_evaluate):
        lines.append(f"first trial {i + 1}: {point}")
    lines += [f"warning: {w}" for w in late_rungs(cfg, prepared, workers_per_trial(s))]
    return "\n".join(lines)
