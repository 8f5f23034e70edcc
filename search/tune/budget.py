"""Budgets that end a whole search, and a record of which one did.

`num_samples` and `max_concurrent_trials` are Tune's own. On top, a `SearchBudget` stopper ends the
search when the first of these is reached:

- ``time_budget_s``: wall seconds since this session of the search started (a resumed search gets
  every budget afresh);
- ``target``: some trial's validation metric reached this value (e.g. agreement 0.80);
- ``epoch_budget``: total compute, the sum of epochs trained over all trials (fractional epochs, as
  ASHA counts them) - the budget the search-efficiency benchmark compares searchers at.

The reason goes to `pairtune_end.json` in the run directory; `pairtune export` puts it into
summary.json (``ended_by``: one of time_budget, target, epoch_budget, or num_samples when every
trial ran, or interrupted when the search stopped before any of these, e.g. its driver was stopped;
`pairtune resume` continues it).
"""

from __future__ import annotations

import json
import math
import time

from ray import tune

from search.config.parse import PairtuneConfig
from search.runs import storage
from search.runs.layout import END_FILE, EPOCH, run_dir


class SearchBudget(tune.Stopper):
    def __init__(
        self,
        metric: str,
        time_attr: str,
        end_file: str | None,
        time_budget_s: float | None = None,
        target: float | None = None,
        epoch_budget: float | None = None,
        mode: str = "max",
    ):
        self.metric, self.time_attr, self.end_file, self.mode = metric, time_attr, end_file, mode
        self.time_budget_s, self.target, self.epoch_budget = time_budget_s, target, epoch_budget
        self.started = None
        self.epochs: dict[str, float] = {}
        self.ended_by: dict | None = None

    def __getstate__(self):  # a resumed search gets its budgets afresh (clock, epochs, end)
        return {**self.__dict__, "started": None, "epochs": {}, "ended_by": None}

    @property
    def epochs_total(self) -> float:
        return sum(self.epochs.values())

    def _end(self, reason: str, **detail) -> None:
        if self.ended_by is None:
            self.ended_by = {"ended_by": reason, **detail, "epochs_total": round(self.epochs_total, 4)}
            if self.end_file:
                storage.write_text(self.end_file, json.dumps(self.ended_by, indent=2))

    def __call__(self, trial_id: str, result: dict) -> bool:
        if self.time_attr in result:
            self.epochs[trial_id] = max(self.epochs.get(trial_id, 0.0), float(result[self.time_attr]))
        value = result.get(self.metric)
        if self.target is not None and value is not None and math.isfinite(value):
            reached = value >= self.target if self.mode == "max" else value <= self.target
            if reached:
                self._end("target", target=self.target, trial_id=trial_id, value=value)
        if self.epoch_budget is not None and self.epochs_total >= self.epoch_budget:
            self._end("epoch_budget", epoch_budget=self.epoch_budget)
        return False  # single trials are stopped by the scheduler; this ends the search as a whole

    def stop_all(self) -> bool:
        if self.started is None:
            self.started = time.monotonic()
        if self.ended_by is None and self.time_budget_s is not None:
            elapsed = time.monotonic() - self.started
            if elapsed >= self.time_budget_s:
                self._end("time_budget", time_budget_s=self.time_budget_s, elapsed_s=round(elapsed, 1))
        return self.ended_by is not None


def clear(run) -> None:
    """A resumed search records its own reason."""
    path = storage.join(storage.location(run), END_FILE)
    if storage.exists(path):
        storage.write_text(path, json.dumps({"ended_by": None}))


def make_stopper(cfg: PairtuneConfig) -> SearchBudget:
    s = cfg.search
    return SearchBudget(
        s.metric, EPOCH, str(storage.join(run_dir(cfg), END_FILE)),
        time_budget_s=s.time_budget_s, target=s.target, epoch_budget=s.epoch_budget, mode=s.mode,
    )
