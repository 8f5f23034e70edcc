"""The `search.tracking` section: which trackers a search reports to and their settings, checked with
the rest of the config (search/tune/tracking.py wires them into Ray Tune).

    search:
      tracking:
        wandb:                  # one W&B run per trial (search/tune/tracking.py)
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

WANDB_KEYS = {"project": str, "group": str, "entity": str, "mode": str}
WANDB_MODES = ("online", "offline", "disabled")
MLFLOW_KEYS = {"tracking_uri": str, "experiment_name": str, "tags": dict}
TRACKERS = {"wandb": WANDB_KEYS, "mlflow": MLFLOW_KEYS}


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
