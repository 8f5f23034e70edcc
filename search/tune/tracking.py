"""Experiment trackers for a search: TensorBoard always, Weights & Biases and MLflow when asked.

TensorBoard: every trial writes event files (Lightning's TensorBoardLogger in TRIAL/lightning/, with
train/loss, val/loss and val/agreement per step; Ray Tune's own logger adds the reported results in
TRIAL/events.out.tfevents.*), so `tensorboard --logdir RUN` shows every trial's curves.

    search:
      tracking:
        wandb:                  # through Ray's WandbLoggerCallback, one W&B run per trial
          project: my-project   # required
          group: null           # default: the run name
          entity: null          # W&B team or user; default: yours
          mode: online          # online, offline (files under RUN/wandb, `wandb sync` later) or disabled
        mlflow:                 # through Ray's MLflowLoggerCallback, one MLflow run per trial
          tracking_uri: null    # default: sqlite:///RUN/mlflow.db (`mlflow ui --backend-store-uri` it)
          experiment_name: null # default: search.name
          tags: {}

Credentials never go in the config: W&B reads WANDB_API_KEY or `wandb login`; MLflow reads its own
environment variables.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
from pathlib import Path

from search.runs import storage

WANDB_KEYS = {"project": str, "group": str, "entity": str, "mode": str}
WANDB_MODES = ("online", "offline", "disabled")
MLFLOW_KEYS = {"tracking_uri": str, "experiment_name": str, "tags": dict}
MLFLOW_DB = "mlflow.db"
TRACKERS = {"wandb": WANDB_KEYS, "mlflow": MLFLOW_KEYS}
EXTRAS = {"wandb": ("wandb", "pip install 'pairtune[wandb]'"), "mlflow": ("mlflow", "pip install 'pairtune[mlflow]'")}


def tracking_problems(tracking) -> list[tuple[str, str]]:
    """(key, problem) pairs for search.tracking, keys relative to `search.`."""
    if not isinstance(tracking, dict):
        return [("tracking", f"must be a mapping like {{wandb: {{project: NAME}}}}, got {tracking!r}")]
    out = []
    for name, settings in tracking.items():
        where = f"tracking.{name}"
        if name not in TRACKERS:
            hint = difflib.get_close_matches(str(name), list(TRACKERS), n=1)
            out.append((where, f"unknown tracker; expected one of {list(TRACKERS)}" + (f"; did you mean '{hint[0]}'?" if hint else "")))
            continue
        settings = {} if settings is None else settings
        if not isinstance(settings, dict):
            out.append((where, f"must be a mapping of settings, got {settings!r}"))
            continue
        allowed = TRACKERS[name]
        for key, value in settings.items():
            if key not in allowed:
                hint = difflib.get_close_matches(str(key), list(allowed), n=1)
                extra = f"; did you mean '{hint[0]}'?" if hint else ""
                if "key" in str(key).lower() or "token" in str(key).lower():
                    extra += " (credentials never go in a config: use the tracker's environment variables or login)"
                out.append((f"{where}.{key}", f"unknown key; expected one of {list(allowed)}{extra}"))
            elif value is not None and not isinstance(value, allowed[key]):
                kind = "a mapping" if allowed[key] is dict else "a string"
                out.append((f"{where}.{key}", f"must be {kind}, got {value!r}"))
        if name == "wandb":
            if not settings.get("project"):
                out.append((f"{where}.project", "required: the W&B project the trials log to"))
            if settings.get("mode", "online") not in WANDB_MODES:
                out.append((f"{where}.mode", f"must be one of {list(WANDB_MODES)}, got {settings.get('mode')!r}"))
    return out


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
