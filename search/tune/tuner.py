"""Building and running the Ray Tune search: OptunaSearch (TPE) + ASHA over the trial function."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shlex
import time
from pathlib import Path

from data.prepare import PreparedData
from model.metrics import AGREEMENT, VAL_LOSS
from search.config.parse import ConfigError, PairtuneConfig
from search.config.space import searched_dimensions
from search.runs import storage, study
from search.runs.layout import (
    CHECKPOINT_SCORE,
    CONFIG_FILE,
    DATA_FILE,
    EPOCH,
    STOPS_FILE,
    SYNC_PERIOD_S,
    load_run_config,
    run_dir,
    write_validation,
)
from search.tune import budget, ddp
from search.tune.budget import make_stopper
from search.tune.callbacks import prune_callback, recover_callback
from search.tune.cluster import cluster_address, named_trainable
from search.tune.interrupt import StopSignals
from search.tune.metrics import metrics_callback
from search.tune.preflight import preflight
from search.tune.prepare import prepare_data
from search.tune.scheduler import late_rungs, make_scheduler, time_attr
from search.tune.searcher import extendable, make_searcher
from search.tune.tracking import tracking_callbacks

log = logging.getLogger(__name__)


def trial_name(trial) -> str:
    """Readable trial names for the table and the dashboard: id plus the sampled values."""
    parts = [trial.trial_id]
    for key, value in sorted(trial.config.items()):
        short = key.split(".", 1)[-1]
        parts.append(f"{short}={value:.3g}" if isinstance(value, float) else f"{short}={value}")
    return "_".join(parts)[:120]


def run_trial(params: dict, cfg: PairtuneConfig, prepared: PreparedData) -> None:
    """The trial function Ray runs (search/tune/trial.py); imported here, in the trial's process, so the
    driver that starts a search never imports Lightning."""
    from search.tune.trial import run_trial as trial

    trial(params, cfg, prepared)


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
    search_alg = extendable(make_searcher(cfg, run=run_dir(cfg)), cfg.search.max_concurrent_trials)
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            metric=cfg.search.metric,
            mode=cfg.search.mode,
            search_alg=search_alg,
            scheduler=make_scheduler(cfg),
            num_samples=cfg.search.num_samples,
            # limited by search_alg's ConcurrencyLimiter when there is one (Tune would ignore this then)
            max_concurrent_trials=None if search_alg else cfg.search.max_concurrent_trials,
            trial_name_creator=trial_name,
            trial_dirname_creator=lambda t: t.trial_id,
            reuse_actors=cfg.search.reuse_trial_processes and ddp.workers_per_trial(cfg.search) == 1,
        ),
        run_config=tune.RunConfig(
            name=cfg.search.name,
            storage_path=storage.parent(run_dir(cfg)),
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=1, checkpoint_score_attribute=CHECKPOINT_SCORE, checkpoint_score_order="max"
            ),
            callbacks=[prune_callback(), metrics_callback(cfg.search.name, cfg.search.metric, cfg.search.mode),
                       *tracking_callbacks(cfg.search.tracking, run_dir(cfg), cfg.search.name)],
            stop=make_stopper(cfg),
            failure_config=tune.FailureConfig(max_failures=cfg.search.max_failures, fail_fast=False),
            # Results and experiment state reach shared storage (s3://) at least this often: `pairtune status`.
            # sync_artifacts: each trial's working directory (its TensorBoard events) reaches storage.
            sync_config=tune.SyncConfig(sync_period=SYNC_PERIOD_S, sync_artifacts=True),
            progress_reporter=reporter,
            verbose=1,
        ),
    )


def write_run_files(cfg: PairtuneConfig, prepared: PreparedData) -> Path | str:
    """The data summary and the validation votes (for the intervals) beside the config that claimed
    the run directory (fresh_run)."""
    directory = run_dir(cfg)
    storage.write_text(storage.join(directory, DATA_FILE), json.dumps(prepared.summary(), indent=2))
    write_validation(directory, *prepared.validation_votes())
    # A new run starts a new study: the driver's copy for a URI may hold an earlier run's at that address.
    study.study_file(directory).unlink(missing_ok=True)
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


# When the first driver connects, Ray starts idle worker processes for tasks to come (one per core here:
# two on 2 cores, also with num_cpus=8); Tune never runs a trial in one (each trial actor gets a process
# of its own: measured with Ray 2.60), so in a local search they only cost memory (about 80 MB each)
# and a CPU-second each to start. tests/test_security.py checks that a local Ray has none.
LOCAL_RAY_CONFIG = {"prestart_worker_first_driver": False}


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
        kwargs = {} if address else {"include_dashboard": True, "dashboard_host": "127.0.0.1",
                                     "_system_config": LOCAL_RAY_CONFIG}
        return ray.init(address=address or "local", log_to_driver=True, **kwargs)
    return None


def resume_search(run: str | Path, address: str | None = None, signals: StopSignals | None = None, more_trials: int = 0):
    """Continue an interrupted search: finished trials stay as they are, unfinished and errored ones
    continue from their latest checkpoint, the searcher keeps its history, ASHA its rungs, and budgets
    start afresh. `more_trials` (`pairtune extend`): then that many more trials than the run's
    num_samples, a finished search included; errored trials stay as they ended. `signals.received`
    says whether SIGINT / SIGTERM stopped it (search/tune/interrupt.py)."""
    from ray import tune

    run = storage.location(run)
    address = cluster_address(address)
    cfg = load_run_config(run)
    name = cfg.search.name  # the trackers' group and experiment, as when it started
    # Where the run is now (it may have been moved or copied since): the storage checks look there.
    cfg = dataclasses.replace(cfg, search=dataclasses.replace(cfg.search, storage_path=storage.parent(run), name=storage.name(run)))
    if not tune.Tuner.can_restore(str(run)):
        raise ConfigError([f"{run}: no Ray Tune experiment state to resume"])
    preflight(cfg, local_cluster=address is None)
    prepared = prepare_data(cfg)
    start_ray(address)
    # extend adds trials and continues unfinished ones; only resume retries the errored ones
    tuner = tune.Tuner.restore(str(run), trainable=make_trainable(cfg, prepared), resume_unfinished=True,
                               resume_errored=not more_trials)
    search_alg, scheduler = restored_parts(tuner)
    if more_trials:
        if not hasattr(search_alg, "extend"):
            raise ConfigError([f"{run}: this search has no searcher to extend (nothing in search.space, or a run "
                               "from a pairtune that could not extend); start a new search instead"])
        search_alg.extend(more_trials)
        cfg = dataclasses.replace(cfg, search=dataclasses.replace(cfg.search, num_samples=cfg.search.num_samples + more_trials))
        storage.write_text(storage.join(run, CONFIG_FILE), cfg.to_yaml())  # the run says how many trials it asked for
    searcher = search_alg
    while hasattr(searcher, "searcher"):  # the wrappers: ExtendableSearch, ConcurrencyLimiter
        searcher = searcher.searcher
    if hasattr(searcher, "relocate"):  # its study is reopened where the run is now (search/runs/study.py)
        searcher.relocate(run)
    if hasattr(scheduler, "remember"):
        scheduler.stops_file = str(storage.join(run, STOPS_FILE))
        points = rung_points(run, cfg)
        scheduler.remember(points, cfg.search.mode)
        log.info("ASHA remembers the rung values of %d earlier trial(s)", len(points))
    run_config = tuner._local_tuner.get_run_config()
    made = [*tracking_callbacks(cfg.search.tracking, run, name), recover_callback()]
    run_config.callbacks = made_again(run_config.callbacks or [], made)
    budget.clear(run)  # this session records its own reason
    return fit_and_sync(tuner, run, signals), run


def made_again(restored: list, made: list) -> list:
    """A restored search's callbacks (Ray unpickles them from the run; a run resumed before also holds
    the ones that resume added) with pairtune's own made again in `made`, each replacing the restored one
    of its class: the trackers for where the run is now (the restored ones would write W&B's offline runs
    and the MLflow store into the directory the search started in, which a moved or copied run no longer
    is), and this pairtune's recover callback."""
    names = {type(c).__name__ for c in made}
    return [c for c in restored if type(c).__name__ not in names] + made


def restored_parts(tuner):
    """The search algorithm and the scheduler Tuner.restore unpickled from the run. Ray has no public
    handle on them: this reads TunerInternal's tune config, and fails loudly if Ray moves it."""
    config = tuner._local_tuner._tune_config
    return config.search_alg, config.scheduler


def rung_points(run, cfg: PairtuneConfig) -> dict[str, list[tuple[float, float]]]:
    """Each trial's (time, value of the searched metric) in the order it reported them, time in ASHA's
    unit (search.time_attr): what ASHA saw."""
    from search.runs.results import ITERATION, read_run

    attr = time_attr(cfg)
    points = {}
    with storage.local_view(run) as local:
        records = read_run(local, cfg.search.metric, cfg.search.mode, shown=run if storage.is_uri(run) else None)
    for trial_id, frame in records.frames.items():
        if len(frame) and attr in frame and cfg.search.metric in frame:
            rows = frame.sort_values(ITERATION) if ITERATION in frame else frame
            points[trial_id] = [(float(e), float(v)) for e, v in zip(rows[attr], rows[cfg.search.metric])
                                if not math.isnan(v)]  # ASHA's cutoff ignores NaN (nanpercentile)
    return points


def run_search(cfg: PairtuneConfig, address: str | None = None, signals: StopSignals | None = None):
    """Validate and prepare everything, then start Ray and run the search. Returns the ResultGrid and
    the run directory; `signals.received` says whether SIGINT / SIGTERM stopped it early."""
    address = cluster_address(address)
    preflight(cfg, local_cluster=address is None)
    prepared = prepare_data(cfg)  # raises DataError before Ray starts, and before a run directory is claimed
    for warning in late_rungs(cfg, prepared, ddp.workers_per_trial(cfg.search)):
        log.warning(warning)
    cfg = fresh_run(cfg)
    directory = write_run_files(cfg, prepared)
    log.info("run directory: %s (watch its trials: pairtune dashboard %s)", directory, shlex.quote(str(directory)))
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


