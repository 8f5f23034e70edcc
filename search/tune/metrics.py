"""The searched metric as Ray metrics, so Prometheus and Grafana chart a search beside Ray's own metrics.

The driver sets three gauges (ray.util.metrics) at each result a trial reports, tagged `search`
(search.name) and `trial` (its Tune trial id). Ray exports them in Prometheus format on each node's
metrics export port, with Ray's `ray_` prefix:

    ray_pairtune_trial_value    the trial's latest value of search.metric
    ray_pairtune_trial_best     its best value so far (by search.mode)
    ray_pairtune_trial_epochs   the epochs it has trained (fractional)

Ray pushes them every few seconds (about 10 by default), and a gauge lives as long as the driver.
"""

from __future__ import annotations

import math

from model.metrics import better
from search.runs.layout import EPOCH

GAUGES = {  # name -> description
    "pairtune_trial_value": "a trial's latest value of the searched metric",
    "pairtune_trial_best": "a trial's best value of the searched metric so far",
    "pairtune_trial_epochs": "the epochs a trial has trained",
}
TAG_KEYS = ("search", "trial")


def metrics_callback(search: str, metric: str, mode: str):
    from ray import tune

    class RayMetrics(tune.Callback):
        """Sets the GAUGES at each result (see the module docstring)."""

        def __init__(self):
            self._gauges = None  # made in the driver's Ray session, never pickled with the search
            self._best: dict[str, float] = {}

        def __getstate__(self):
            return {**self.__dict__, "_gauges": None}

        def _gauge(self, name: str):
            if self._gauges is None:
                from ray.util.metrics import Gauge

                self._gauges = {n: Gauge(n, description=d, tag_keys=TAG_KEYS) for n, d in GAUGES.items()}
            return self._gauges[name]

        def on_trial_result(self, iteration, trials, trial, result, **info):
            tags = {"search": search, "trial": trial.trial_id}
            value = result.get(metric)
            if value is not None and math.isfinite(value):
                best = self._best.get(trial.trial_id)
                self._best[trial.trial_id] = value if best is None else better(mode)(best, value)
                self._gauge("pairtune_trial_value").set(float(value), tags=tags)
                self._gauge("pairtune_trial_best").set(float(self._best[trial.trial_id]), tags=tags)
            if EPOCH in result:
                self._gauge("pairtune_trial_epochs").set(float(result[EPOCH]), tags=tags)

    return RayMetrics()
