"""Experiment trackers for a search: TensorBoard always, Weights & Biases and MLflow when asked.

TensorBoard: every trial writes event files (Lightning's TensorBoardLogger in TRIAL/lightning/, with
train/loss, val/loss and val/agreement per step; Ray Tune's own logger adds the reported results in
TRIAL/events.out.tfevents.*), so `tensorboard --logdir RUN` shows every trial's curves.

Weights & Biases runs through wandb_callback (below) and MLflow through mlflow_callback (Ray's
MLflowLoggerCallback, logging a result in one call), one run per trial, both on the driver; the
`search.tracking` section and its checks are in search/config/tracking.py.

Credentials never go in the config: W&B reads WANDB_API_KEY or `wandb login`; MLflow reads its own
environment variables.
"""

from __future__ import annotations

import importlib.util
import logging
import numbers
import os
import time
from pathlib import Path

from search.runs import storage

MLFLOW_DB = "mlflow.db"
log = logging.getLogger(__name__)
EXTRAS = {"wandb": ("wandb", "pip install 'pairtune[wandb]'"), "mlflow": ("mlflow", "pip install 'pairtune[mlflow]'")}


def environment_problems(tracking: dict) -> list[str]:
    """Trackers asked for but not installed, or W&B online without credentials: found before Ray starts."""
    out = []
    for name in tracking:
        module, hint = EXTRAS[name]
        if importlib.util.find_spec(module) is None:
            out.append(f"search.tracking.{name}: needs the {module} package: {hint}")
    wandb = tracking.get("wandb")
    if wandb is not None and (wandb or {}).get("mode", "online") == "online" and os.environ.get("WANDB_MODE") not in ("offline", "disabled"):
        netrc = Path.home() / ".netrc"
        logged_in = netrc.exists() and "api.wandb.ai" in netrc.read_text(errors="replace")
        if not os.environ.get("WANDB_API_KEY") and not logged_in:
            out.append("search.tracking.wandb: mode online needs W&B credentials: set WANDB_API_KEY or run "
                       "`wandb login` (or use mode: offline and `wandb sync` later)")
    return out


def default_mlflow_uri(run: Path | str) -> str:
    """A SQLite database in the run directory (MLflow 3 has put plain-file stores in maintenance mode);
    for a run on shared storage, on the driver's disk, copied into the run (storage.sync_driver_files)."""
    return f"sqlite:///{storage.driver_dir(run).resolve() / MLFLOW_DB}"


def wandb_callback(project: str, group: str, mode: str, directory: str, entity: str | None = None):
    """One W&B run per trial, kept by the driver (WandbTrials below)."""
    from ray.tune.logger import LoggerCallback

    class WandbTrials(LoggerCallback):
        """One W&B run per trial, kept by the driver. Ray's WandbLoggerCallback starts two Ray actors per
        trial (a logging actor and its queue), each a Python process importing Ray and wandb (about 2
        CPU-seconds each to start, measured here; they live on the head node as long as the trial); W&B's
        own service process serves many runs of one process side by side (`reinit="create_new"`), so
        here a trial costs milliseconds. As Ray's: the run's id is the trial id and its name the trial's name, in the
        search's group; its config holds the trial's sampled parameters; each result's numbers are logged
        at its training_iteration. A failed trial's run ends with exit code 1. W&B's problems are
        logged, never raised: a tracker never takes the search down."""

        NOT_LOGGED = ("config", "done", "should_checkpoint", "pid")  # not metrics (Ray's callback puts pid in the config)

        def __init__(self):
            self._runs = {}

        def __getstate__(self):  # Ray pickles its callbacks with the search: open runs stay behind
            return {**self.__dict__, "_runs": {}}

        def log_trial_start(self, trial):
            if trial in self._runs:  # a retried or resumed trial goes on in its run
                return
            try:
                import wandb

                settings = wandb.Settings(console="off", x_disable_stats=True, silent=True)
                self._runs[trial] = wandb.init(
                    project=project, group=group, entity=entity, mode=mode, dir=directory, id=trial.trial_id,
                    name=str(trial), config=dict(trial.config), reinit="create_new", allow_val_change=True,
                    settings=settings)
            except Exception as e:  # noqa: BLE001 (W&B's errors are many; none may stop the search)
                log.warning("W&B: no run for trial %s: %s: %s", trial, type(e).__name__, e)
                self._runs[trial] = None

        def log_trial_result(self, iteration, trial, result):
            if trial not in self._runs:
                self.log_trial_start(trial)
            run = self._runs.get(trial)
            if run is None:
                return
            metrics = {k: v for k, v in result.items() if k not in self.NOT_LOGGED and isinstance(v, numbers.Real)}
            try:
                run.log(metrics, step=result.get("training_iteration"))
            except Exception as e:  # noqa: BLE001
                log.warning("W&B: a result of trial %s was not logged: %s: %s", trial, type(e).__name__, e)

        def log_trial_end(self, trial, failed=False):
            run = self._runs.pop(trial, None)
            if run is not None:
                try:
                    run.finish(exit_code=1 if failed else 0)
                except Exception as e:  # noqa: BLE001
                    log.warning("W&B: the run of trial %s did not finish: %s: %s", trial, type(e).__name__, e)

        def on_experiment_end(self, trials, **info):
            for trial in list(self._runs):  # trials a signal or a budget stopped: their runs end, not failed
                self.log_trial_end(trial)

    return WandbTrials()


def tracking_callbacks(tracking: dict, run: Path | str, name: str) -> list:
    """Ray Tune callbacks for the configured trackers (TensorBoard needs none: trials write it). Files
    they keep in the run go to storage.driver_dir(run): the run itself, or for s3:// / gs:// runs a
    local directory whose files the search copies into the run when it ends."""
    callbacks = []
    if "wandb" in tracking:
        w = tracking["wandb"] or {}
        callbacks.append(wandb_callback(w["project"], w.get("group") or name, w.get("mode") or "online",
                                        str(storage.driver_dir(run)), w.get("entity")))
    if "mlflow" in tracking:
        m = tracking["mlflow"] or {}
        uri = m.get("tracking_uri") or default_mlflow_uri(run)
        callbacks.append(mlflow_callback(uri, m.get("experiment_name") or name, m.get("tags") or None))
    return callbacks


def mlflow_callback(uri: str, experiment_name: str, tags: dict | None):
    """One MLflow run per trial, kept by the driver: Ray's MLflowLoggerCallback, each result logged in one call."""
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    class MLflowTrials(MLflowLoggerCallback):
        """Ray's callback logs each number of a result in a call of its own, after a query that the run
        exists: with the run's SQLite store about 30 transactions a result, all in the driver's loop
        (benchmarks/mlflow_logging.py). Here a result is one log_batch, with the same numbers (Ray's rule
        for which values are metrics), the same step and one timestamp. As the W&B callback's, a
        failure is logged, never raised."""

        def log_trial_result(self, iteration, trial, result):
            from mlflow.entities import Metric
            from ray._private.dict import flatten_dict
            from ray.air.constants import TRAINING_ITERATION
            from ray.tune.result import TIMESTEPS_TOTAL

            step = result.get(TIMESTEPS_TOTAL) or result[TRAINING_ITERATION]  # as Ray's
            values = self.mlflow_util._parse_dict(flatten_dict(result))  # Ray's own (private) helpers, as its callback uses them
            now = int(time.time() * 1000)
            try:
                self.mlflow_util._get_client().log_batch(
                    self._trial_runs[trial], metrics=[Metric(k, v, now, step) for k, v in values.items()])
            except Exception as e:  # noqa: BLE001 (MLflow's errors are many; none may stop the search)
                log.warning("MLflow: a result of trial %s was not logged: %s: %s", trial, type(e).__name__, e)

    return MLflowTrials(tracking_uri=uri, experiment_name=experiment_name, tags=tags, save_artifact=False)
