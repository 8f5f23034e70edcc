"""Building and running the Ray Tune search: OptunaSearch (TPE) + ASHA over the trial function."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from pathlib import Path

from data import DataError
from data.prepare import PreparedData
from model.backbone import BackboneError, resolve_backbone
from model.metrics import AGREEMENT, VAL_LOSS
from search.config.parse import ConfigError, PairtuneConfig
from search.config.space import possible_values, searched_dimensions
from search.runs import storage
from search.runs.layout import (
    CHECKPOINT_SCORE,
    CONFIG_FILE,
    DATA_FILE,
    END_FILE,
    EPOCH,
    RESUME_FILE,
    STOPS_FILE,
    SYNC_PERIOD_S,
    load_run_config,
    run_dir,
)
from search.tune import budget, ddp
from search.tune.budget import SearchBudget
from search.tune.cluster import cluster_address, named_trainable
from search.tune.interrupt import StopSignals
from search.tune.prepare import prepare_data
from search.tune.searcher import RungAwareOptunaSearch, rung_milestones
from search.tune.tracking import environment_problems, tracking_callbacks
from search.tune.trial import run_trial

log = logging.getLogger(__name__)

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
    for precision in possible_values(cfg, "train.precision"):
        if precision == "16-mixed" and cfg.search.gpus_per_trial == 0:
            problems.append(
                f"{cfg.source}: train.precision: 16-mixed needs GPU trials but search.gpus_per_trial is 0; "
                "use auto (fp16 on GPUs, fp32 on CPUs) or 32-true"
            )
    if problems:
        raise ConfigError(problems)


def trial_name(trial) -> str:
    """Readable trial names for the table and the dashboard: id plus the sampled values."""
    parts = [trial.trial_id]
    for key, value in sorted(trial.config.items()):
        short = key.split(".", 1)[-1]
        parts.append(f"{short}={value:.3g}" if isinstance(value, float) else f"{short}={value}")
    return "_".join(parts)[:120]


def asha_milestones(cfg: PairtuneConfig) -> list[float]:
    """The epochs at which ASHA compares trials (none with the FIFO scheduler)."""
    if cfg.search.scheduler != "asha":
        return []
    max_t = float(max(possible_values(cfg, "train.epochs")))
    return rung_milestones(min(cfg.search.grace_period, max_t), cfg.search.reduction_factor, max_t)


def make_searcher(cfg: PairtuneConfig, **tpe_options):
    """Optuna's TPE (multivariate, seeded) or random sampler, told the truth about stopped trials
    (search.stopped_trials, see search/tune/searcher.py). `tpe_options` go to TPESampler (benchmarks)."""
    import optuna

    dims = searched_dimensions(cfg)
    if not dims:
        return None
    s = cfg.search
    if s.searcher == "random":
        sampler = optuna.samplers.RandomSampler(seed=s.seed)
    else:
        options = {"multivariate": True, "n_startup_trials": s.n_startup_trials, **tpe_options}
        sampler = optuna.samplers.TPESampler(seed=s.seed, **options)
    return RungAwareOptunaSearch(
        space={d.key: d.to_optuna() for d in dims},
        metric=s.metric,
        mode=s.mode,
        points_to_evaluate=[dict(p) for p in s.points_to_evaluate] or None,
        sampler=sampler,
        feedback=s.stopped_trials,
        time_attr=EPOCH,
        milestones=asha_milestones(cfg),
    )


def make_stopper(cfg: PairtuneConfig) -> SearchBudget:
    s = cfg.search
    return SearchBudget(
        s.metric, EPOCH, str(storage.join(run_dir(cfg), END_FILE)),
        time_budget_s=s.time_budget_s, target=s.target, epoch_budget=s.epoch_budget, mode=s.mode,
    )


def _recording_asha():
    from ray.tune.schedulers import ASHAScheduler, TrialScheduler

    class RecordingASHA(ASHAScheduler):
        """ASHA that writes down each trial it stops early, so the leaderboard can say so exactly."""

        def __init__(self, stops_file: str, **kwargs):
            super().__init__(**kwargs)
            self.stops_file = stops_file

        def on_trial_result(self, tune_controller, trial, result: dict) -> str:
            action = super().on_trial_result(tune_controller, trial, result)
            if action == TrialScheduler.STOP and not result.get("final"):
                stop = {"trial_id": trial.trial_id, EPOCH: result.get(EPOCH), "by": "asha"}
                storage.append_line(self.stops_file, json.dumps(stop))
            return action

    return RecordingASHA


def prune_callback():
    from ray import tune

    class PruneCheckpoints(tune.Callback):
        """When a trial ends (finished or stopped), drop everything but its best checkpoint. Errored
        trials keep their latest one, so `pairtune resume` can continue them."""

        def on_trial_complete(self, iteration, trials, trial, **info):
            if trial.path:  # the trial's directory in storage_path, inside its (local or shared) filesystem
                storage.prune_checkpoints(trial.storage.storage_filesystem, trial.path, CHECKPOINT_SCORE, RESUME_FILE)

    return PruneCheckpoints()


def make_scheduler(cfg: PairtuneConfig):
    from ray.tune.schedulers import FIFOScheduler

    if cfg.search.scheduler == "fifo":
        return FIFOScheduler()
    max_t = float(max(possible_values(cfg, "train.epochs")))
    return _recording_asha()(
        stops_file=str(storage.join(run_dir(cfg), STOPS_FILE)),
        time_attr=EPOCH,
        max_t=max_t,
        grace_period=min(cfg.search.grace_period, max_t),
        reduction_factor=cfg.search.reduction_factor,
    )


def make_trainable(cfg: PairtuneConfig, prepared: PreparedData):
    from ray import tune

    if ddp.workers_per_trial(cfg.search) > 1:  # the trial drives a Ray Train run that holds the CPUs/GPUs
        trainable = named_trainable(tune.with_parameters(ddp.run_ddp_trial, cfg=cfg, prepared=prepared))
        return tune.with_resources(trainable, ddp.driver_resources())
    trainable = named_trainable(tune.with_parameters(run_trial, cfg=cfg, prepared=prepared))
    return tune.with_resources(trainable, {"cpu": cfg.search.cpus_per_trial, "gpu": cfg.search.gpus_per_trial})


def make_tuner(cfg: PairtuneConfig, prepared: PreparedData):
    from ray import tune

    dims = searched_dimensions(cfg)
    trainable = make_trainable(cfg, prepared)
    columns = {AGREEMENT: "agreement", VAL_LOSS: "val loss", EPOCH: "epoch"}
    if cfg.search.metric not in columns:
        columns = {cfg.search.metric: cfg.search.metric.split("/")[-1], **columns}
    reporter = tune.CLIReporter(
        metric_columns=columns,
        parameter_columns={d.key: d.key.split(".", 1)[-1] for d in dims},
        max_report_frequency=15,
        # Not sorted by metric: Ray's sort fails on a trial a budget ended before its first result.
    )
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            metric=cfg.search.metric,
            mode=cfg.search.mode,
            search_alg=make_searcher(cfg),
            scheduler=make_scheduler(cfg),
            num_samples=cfg.search.num_samples,
            max_concurrent_trials=cfg.search.max_concurrent_trials,
            trial_name_creator=trial_name,
            trial_dirname_creator=lambda t: t.trial_id,
        ),
        run_config=tune.RunConfig(
            name=cfg.search.name,
            storage_path=storage.parent(run_dir(cfg)),
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=1, checkpoint_score_attribute=CHECKPOINT_SCORE, checkpoint_score_order="max"
            ),
            callbacks=[prune_callback(), *tracking_callbacks(cfg.search.tracking, run_dir(cfg), cfg.search.name)],
            stop=make_stopper(cfg),
            failure_config=tune.FailureConfig(max_failures=cfg.search.max_failures, fail_fast=False),
            # Results and experiment state reach shared storage (s3://) at least this often: `pairtune status`.
            sync_config=tune.SyncConfig(sync_period=SYNC_PERIOD_S),
            progress_reporter=reporter,
            verbose=1,
        ),
    )


def write_run_files(cfg: PairtuneConfig, prepared: PreparedData) -> Path | str:
    """The data summary beside the config that claimed the run directory (fresh_run)."""
    directory = run_dir(cfg)
    storage.write_text(storage.join(directory, DATA_FILE), json.dumps(prepared.summary(), indent=2))
    return directory


def fresh_run(cfg: PairtuneConfig) -> PairtuneConfig:
    """cfg, owning its run directory: storage_path/name now holds its pairtune_config.yaml, created
    atomically (storage.claim), so two searches never share a directory, even when started together.
    When the name is taken (by a finished, running or just starting search), the search gets a
    timestamped name instead."""
    name = cfg.search.name
    for attempt in range(100):
        if attempt:
            stamp = f"{name}-{time.strftime('%Y%m%d-%H%M%S')}" + (f"-{attempt}" if attempt > 1 else "")
            cfg = dataclasses.replace(cfg, search=dataclasses.replace(cfg.search, name=stamp))
        directory = run_dir(cfg)
        try:
            if not storage.has_experiment(directory) and storage.claim(directory, CONFIG_FILE, cfg.to_yaml()):
                break
        except OSError as e:
            raise ConfigError([f"{cfg.source}: search.storage_path: cannot create the run directory {directory} ({e})"]) from e
    else:
        raise ConfigError([f"{cfg.source}: search.name: no free run directory for {name} under {cfg.search.storage_path}"])
    if cfg.search.name != name:
        log.warning("%s already holds a search; this one goes to %s", storage.join(storage.parent(directory), name), directory)
    return cfg


def start_ray(address: str | None):
    """Connect to `address`, or start a local Ray instance; returns ray.init's context (None when
    Ray was already initialised)."""
    import ray

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the classic live trial table
    # A checkpoint at every validation makes Ray snapshot its state often; that is intended.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if not ray.is_initialized():
        # The dashboard can run code on the cluster: it listens on loopback only (reach a remote one
        # through `ray dashboard cluster.yaml`); a local Ray also turns token authentication on.
        # Without an address, "local" starts a new instance, as documented: a bare ray.init() would
        # join a cluster that `ray start` left running on this machine instead.
        kwargs = {} if address else {"include_dashboard": True, "dashboard_host": "127.0.0.1"}
        return ray.init(address=address or "local", log_to_driver=True, **kwargs)
    return None


def resume_search(run: str | Path, address: str | None = None, signals: StopSignals | None = None):
    """Continue an interrupted search: finished trials stay as they are, unfinished and errored ones
    continue from their latest checkpoint, the searcher keeps its history. `signals.received` says
    whether SIGINT / SIGTERM stopped it (search/tune/interrupt.py)."""
    from ray import tune

    run = storage.location(run)
    address = cluster_address(address)
    cfg = load_run_config(run)
    # Where the run is now (it may have been moved or copied since): the storage checks look there.
    cfg = dataclasses.replace(cfg, search=dataclasses.replace(cfg.search, storage_path=storage.parent(run), name=storage.name(run)))
    if not tune.Tuner.can_restore(str(run)):
        raise ConfigError([f"{run}: no Ray Tune experiment state to resume"])
    preflight(cfg, local_cluster=address is None)
    prepared = prepare_data(cfg)
    start_ray(address)
    budget.clear(run)  # this session records its own reason
    tuner = tune.Tuner.restore(str(run), trainable=make_trainable(cfg, prepared), resume_unfinished=True, resume_errored=True)
    return fit_and_sync(tuner, run, signals), run


def run_search(cfg: PairtuneConfig, address: str | None = None, signals: StopSignals | None = None):
    """Validate and prepare everything, then start Ray and run the search. Returns the ResultGrid and
    the run directory; `signals.received` says whether SIGINT / SIGTERM stopped it early."""
    address = cluster_address(address)
    preflight(cfg, local_cluster=address is None)
    prepared = prepare_data(cfg)  # raises DataError before Ray starts, and before a run directory is claimed
    cfg = fresh_run(cfg)
    directory = write_run_files(cfg, prepared)
    log.info("run directory: %s", directory)
    if cfg.search.baseline:  # the floor to beat, in seconds, before Ray starts
        from search.tune.baseline import write_baseline

        write_baseline(directory, prepared.votes, prepared.split)
    start_ray(address)
    return fit_and_sync(make_tuner(cfg, prepared), directory, signals), directory


def fit_and_sync(tuner, run, signals: StopSignals | None = None):
    """Run the search, SIGINT and SIGTERM stopping it gracefully (installed after ray.init, whose
    SIGTERM handler would abort the driver); then copy what the driver kept on its own disk (the
    trackers' files) into a run on shared storage, also when the search ends early."""
    try:
        with signals or StopSignals():
            return tuner.fit()
    finally:
        storage.sync_driver_files(run)


__all__ = ["ConfigError", "DataError", "make_tuner", "preflight", "resume_search", "run_search"]
