"""Experiment trackers for a search: TensorBoard always, Weights & Biases and MLflow when asked.

TensorBoard: every trial writes event files (Lightning's TensorBoardLogger in TRIAL/lightning/, with
train/loss, val/loss and val/agreement per step; Ray Tune's own logger adds the reported results in
TRIAL/events.out.tfevents.*), so `tensorboard --logdir RUN` shows every trial's curves.

Weights & Biases runs through Ray's WandbLoggerCallback and MLflow through its MLflowLoggerCallback, one
run per trial; the `search.tracking` section and its checks are in search/config/tracking.py.

Credentials never go in the config: W&B reads WANDB_API_KEY or `wandb login`; MLflow reads its own
environment variables.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from search.runs import storage

MLFLOW_DB = "mlflow.db"
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


TRACKER_CALLBACKS = ("WandbLoggerCallback", "MLflowLoggerCallback")  # the classes tracking_callbacks makes


def relocated(callbacks: list, tracking: dict, run: Path | str, name: str) -> list:
    """A restored search's callbacks (Ray unpickles them from the run), with the trackers' made again for
    where the run is now: the restored ones would write W&B's offline runs and the MLflow store into
    the directory the search started in, which a moved or copied run no longer is (and W&B's would
    fail on its API-key check: tracking_callbacks also sets the WANDB_MODE it reads)."""
    fresh = iter(tracking_callbacks(tracking, run, name))
    return [next(fresh) if type(c).__name__ in TRACKER_CALLBACKS else c for c in callbacks]


def tracking_callbacks(tracking: dict, run: Path | str, name: str) -> list:
    """Ray Tune callbacks for the configured trackers (TensorBoard needs none: trials write it). Files
    they keep in the run go to storage.driver_dir(run): the run itself, or for s3:// / gs:// runs a
    local directory whose files the search copies into the run when it ends."""
    callbacks = []
    if "wandb" in tracking:
        from ray.air.integrations.wandb import WandbLoggerCallback

        w = tracking["wandb"] or {}
        mode = w.get("mode") or "online"
        if mode != "online":
            os.environ["WANDB_MODE"] = mode  # Ray's callback skips the API-key check only through this variable
        kwargs = {"mode": mode, "dir": str(storage.driver_dir(run))}
        if w.get("entity"):
            kwargs["entity"] = w["entity"]
        callbacks.append(WandbLoggerCallback(project=w["project"], group=w.get("group") or name, log_config=False, **kwargs))
    if "mlflow" in tracking:
        from ray.air.integrations.mlflow import MLflowLoggerCallback

        m = tracking["mlflow"] or {}
        uri = m.get("tracking_uri") or default_mlflow_uri(run)
        callbacks.append(MLflowLoggerCallback(tracking_uri=uri, experiment_name=m.get("experiment_name") or name,
                                              tags=m.get("tags") or None, save_artifact=False))
    return callbacks
