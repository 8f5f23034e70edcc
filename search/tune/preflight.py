"""`pairtune check` (and `pairtune search --dry-run`): everything a search validates, without Ray."""

from __future__ import annotations

from data.prepare import PreparedData
from search.config.parse import PairtuneConfig
from search.config.space import fixed_values, searched_dimensions
from search.runs.layout import run_dir
from search.tune.cluster import cluster_address
from search.tune.ddp import workers_per_trial
from search.tune.prepare import prepare_data
from search.tune.tuner import preflight


def check(cfg: PairtuneConfig, address: str | None = None) -> PreparedData:
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
        + (f" (grace {s.grace_period:g} epochs, reduction factor {s.reduction_factor:g})" if s.scheduler == "asha" else ""),
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
    return "\n".join(lines)
