"""What Optuna's TPE learns from a trial that ASHA stopped early.

Ray's stock `OptunaSearch` tells Optuna every ended trial as COMPLETE with its last value, so a trial
ASHA stopped after one epoch counts as a finished trial that scored its one-epoch agreement. TPE then
compares numbers that are not comparable: one-epoch values against full-training values.

`RungAwareOptunaSearch` tells the truth instead (``search.stopped_trials``):

One rule for every place that values a trial (the leaderboard, the kept checkpoint, the export and
TPE): a finished trial is worth its *best* validation value, not its last one.

- ``pruned`` (default): a trial that finished is COMPLETE with its best value. A trial stopped before its last validation is PRUNED. Its intermediate values
  are reported per ASHA rung (step k = the k-th rung it reached, value = its agreement when it got
  there, the number ASHA compared), so TPE ranks stopped trials below finished ones and among
  themselves by how far ASHA let them go, then by their value at that rung.
- ``rung``: every trial is told COMPLETE with its agreement at the first rung (grace period), the one
  point all trials reach: comparable, but it rewards fast starters.
- ``stock``: Ray's behaviour, for comparison.

`benchmarks/search_efficiency.py` measures the three; see benchmarks/README.md.
"""

from __future__ import annotations

import math

from ray.tune.search.optuna import OptunaSearch

from search.config.parse import PairtuneConfig
from search.config.space import searched_dimensions
from search.runs.layout import EPOCH
from search.tune.scheduler import asha_milestones

FEEDBACK = ("pruned", "rung", "stock")


class RungAwareOptunaSearch(OptunaSearch):
    """OptunaSearch that reports stopped trials to Optuna as what they are (see module docstring).

    `time_attr` is the result key ASHA counts in (fractional epochs); `milestones` its rungs. A result
    is recorded at the first report past each rung (and step 0 for reports before the first one);
    Optuna keeps the first value reported at a step, which is the value ASHA judged.
    """

    def __init__(self, *args, feedback: str = "pruned", time_attr: str = "epoch", milestones=(), **kwargs):
        if feedback not in FEEDBACK:
            raise ValueError(f"feedback must be one of {FEEDBACK}, got {feedback!r}")
        super().__init__(*args, **kwargs)
        self._feedback = feedback
        self._time_attr = time_attr
        self._milestones = sorted(milestones)
        self._first_rung_value: dict[str, float] = {}
        self._reported: dict[str, set[int]] = {}
        self._best_value: dict[str, float] = {}  # each trial's best value of the metric so far

    def _rung(self, result: dict) -> int:
        t = float(result.get(self._time_attr, 0.0))
        return sum(t >= m * (1 - 1e-9) for m in self._milestones)

    def on_trial_result(self, trial_id: str, result: dict):
        if self._feedback == "stock":
            return super().on_trial_result(trial_id, result)
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        value = result.get(self.metric)
        if value is None or not math.isfinite(value):
            return
        self._note_best(trial_id, float(value))
        rung = self._rung(result)
        reported = self._reported.setdefault(trial_id, set())
        if rung not in reported:
            self._ot_trials[trial_id].report(float(value), rung)
            reported.add(rung)
        if rung >= 1:
            self._first_rung_value.setdefault(trial_id, float(value))

    def _note_best(self, trial_id: str, value: float) -> None:
        best = self._best_value.get(trial_id)
        better = max if self._mode == "max" else min
        self._best_value[trial_id] = value if best is None else better(best, value)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        if self._feedback == "stock" or trial_id in self._completed_trials:
            return super().on_trial_complete(trial_id, result, error)
        from optuna.trial import TrialState

        ot_trial = self._ot_trials[trial_id]
        if result and not error:  # Tune never passes the result a scheduler stopped the trial on to
            self.on_trial_result(trial_id, result)  # on_trial_result: it is the value ASHA judged at a rung
        if error or not result:
            self._ot_study.tell(ot_trial, None, state=TrialState.FAIL if error else TrialState.PRUNED)
            self._completed_trials.add(trial_id)
            return
        if self._feedback == "rung" and self._milestones:  # without ASHA (fifo) there are no rungs: as pruned
            value = self._first_rung_value.get(trial_id)
            state = TrialState.COMPLETE if value is not None else TrialState.PRUNED
        else:  # a finished trial is worth its best validation (the value its kept checkpoint has),
            value = self._best_value.get(trial_id)  # its last result included (on_trial_result above)
            state = TrialState.COMPLETE if result.get("final") and value is not None else TrialState.PRUNED
        self._ot_study.tell(ot_trial, value if state == TrialState.COMPLETE else None, state=state)
        self._completed_trials.add(trial_id)


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
