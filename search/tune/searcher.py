"""What Optuna's TPE learns from a trial that ASHA stopped early.

Ray's stock `OptunaSearch` tells Optuna every ended trial as COMPLETE with its last value, so a trial
ASHA stopped after one epoch counts as a finished trial that scored its one-epoch agreement. TPE then
compares numbers that are not comparable: one-epoch values against full-training values.

`RungAwareOptunaSearch` tells the truth instead (``search.stopped_trials``):

One rule for every place that values a trial (the leaderboard, the kept checkpoint, the export and
TPE): a finished trial is worth its *best* validation value, not its last one.

- ``pruned`` (default): a trial that finished is COMPLETE with its best value. A trial stopped before
  its last validation is PRUNED. TPE ranks a pruned trial by its last intermediate value's step, then
  by that value, so the steps are chosen for that: each validation is reported at step = thousandths
  of an epoch, except the first one past an ASHA rung, which is reported at the rung's own step (the
  value ASHA compared there). Trials ASHA stopped at one rung end on the same step, so TPE ranks
  stopped trials below finished ones and among themselves by how far ASHA let them go, then by their
  value at that rung, whatever their batch size.
- ``rung``: every trial is told COMPLETE with its agreement at the first rung (grace period), the one
  point all trials reach: comparable, but it rewards fast starters.
- ``stock``: Ray's behaviour, for comparison.

`benchmarks/search_efficiency.py` measures the three; see benchmarks/README.md.

The study persists in the run as a journal file (search/runs/study.py), each trial carrying its Tune
trial id, outcome, epochs and kept checkpoint as user attributes; `pairtune resume` reopens it where the
run is now, and marks FAIL the trials a killed driver left RUNNING there that the restored searcher
never heard of (else TPE's constant liar would keep steering around them).
"""

from __future__ import annotations

import logging
import math
import warnings

from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

from model.metrics import better
from search.config.parse import PairtuneConfig
from search.config.space import searched_dimensions
from search.runs import study, storage
from search.runs.layout import CHECKPOINT_SCORE, EPOCH, NOT_BEST_SCORE
from search.tune.scheduler import asha_milestones, time_attr

log = logging.getLogger(__name__)

FEEDBACK = ("pruned", "rung", "stock")


class RungAwareOptunaSearch(OptunaSearch):
    """OptunaSearch that reports stopped trials to Optuna as what they are (see module docstring).

    `time_attr` is the result key ASHA counts in (fractional epochs, or the trial's wall time in
    seconds); `milestones` its rungs. Optuna keeps the first value reported at a step: at a rung's step,
    the value ASHA judged. `run` is the run directory whose journal holds the study (None: Optuna's
    in-memory storage, for benchmarks).
    """

    def __init__(self, *args, feedback: str = "pruned", time_attr: str = "epoch", milestones=(), run=None,
                 warm_start: tuple[str, list] | None = None, **kwargs):
        if feedback not in FEEDBACK:
            raise ValueError(f"feedback must be one of {FEEDBACK}, got {feedback!r}")
        if run is not None:
            kwargs["storage"] = study.journal_storage(study.study_file(run))
        self._warm_start = warm_start  # (the earlier run, its COMPLETE trials): seeds a new study, once
        super().__init__(*args, **kwargs)  # creates the study (_setup_study) when it has the space and mode
        self._run = run
        self._feedback = feedback
        self._time_attr = time_attr
        self._milestones = sorted(milestones)
        self._first_rung_value: dict[str, float] = {}
        self._reported: dict[str, set[int]] = {}  # each trial's steps reported to Optuna
        self._best_value: dict[str, float] = {}  # each trial's best value of the metric so far
        self._times: dict[str, float] = {}  # each trial's time_attr at its latest result
        self._epochs: dict[str, float] = {}  # each trial's epochs trained so far

    def _setup_study(self, mode):
        super()._setup_study(mode)
        if self._warm_start is not None and not self._ot_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            self._warm_up(*self._warm_start)
        self._warm_start = None
        if self._ot_study.metric_names is None:  # optuna-dashboard's axes read "val/agreement", not "Objective 0"
            import optuna

            with warnings.catch_warnings():  # experimental since Optuna 3.2, unchanged in 5.0
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                self._ot_study.set_metric_names([self._metric])

    def _warm_up(self, source: str, earlier: list) -> None:
        """search.warm_start: the earlier search's completed trials as trials of this study, over the keys
        both spaces share; a trial with a value outside this space is left out. Its best runs next
        (after points_to_evaluate, which _setup_study enqueued)."""
        import optuna

        def inside(key, value) -> bool:
            try:
                return self._space[key]._contains(self._space[key].to_internal_repr(value))
            except (ValueError, TypeError):  # a choice this space does not have
                return False

        seeds, outside = [], 0
        for t in earlier:
            params = {k: v for k, v in t.params.items() if k in self._space}
            if not params or not all(inside(k, v) for k, v in params.items()):
                outside += 1
                continue
            seeds.append((t, params))
        for t, params in seeds:
            self._ot_study.add_trial(optuna.trial.create_trial(
                params=params, distributions={k: self._space[k] for k in params}, value=t.value,
                user_attrs={"warm_start_from": str(source), "warm_start_trial": t.number}))
        if seeds:
            best, params = better(self._mode)(seeds, key=lambda s: s[0].value)
            self._ot_study.enqueue_trial(params)
            log.info("warm start from %s: %d of its %d completed trials seed the study (%d left out: a value outside "
                     "this search's space, or no key in it); its best (trial %d, %s %.4f) runs first (after any "
                     "points_to_evaluate)", source,
                     len(seeds), len(earlier), outside, best.number, self._metric, best.value)
        else:
            log.warning("warm start from %s: none of its %d completed trials fits this search's space; a cold start",
                        source, len(earlier))

    def _rung(self, result: dict) -> int:
        t = float(result.get(self._time_attr, 0.0))
        return sum(t >= m * (1 - 1e-9) for m in self._milestones)

    def _step(self, trial_id: str, result: dict) -> int:
        """Thousandths of time_attr's unit (an epoch, or a second), or the step of the highest rung this
        result is the first past."""
        rung = self._rung(result)
        rung_step = round(self._milestones[rung - 1] * study.STUDY_STEPS_PER_EPOCH) if rung else None
        if rung_step is not None and rung_step not in self._reported.get(trial_id, ()):
            return rung_step
        step = math.floor(float(result.get(self._time_attr, 0.0)) * study.STUDY_STEPS_PER_EPOCH)
        if rung < len(self._milestones):  # below the next rung's step, which is kept for the value ASHA judges
            step = min(step, round(self._milestones[rung] * study.STUDY_STEPS_PER_EPOCH) - 1)
        return step

    def suggest(self, trial_id: str):
        config = super().suggest(trial_id)
        self._set_attr(trial_id, study.TUNE_TRIAL_ID, trial_id)
        return config

    def _set_attr(self, trial_id: str, key: str, value) -> None:
        import optuna

        try:
            self._ot_trials[trial_id].set_user_attr(key, value)
        except optuna.exceptions.UpdateFinishedTrialError:  # the journal ran ahead of a restored searcher
            pass

    def on_trial_result(self, trial_id: str, result: dict):
        if self._feedback == "stock":
            return super().on_trial_result(trial_id, result)
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        if self._time_attr in result:
            t = float(result[self._time_attr])
            if trial_id in self._times and t <= self._times[trial_id]:
                return  # seen already: Tune hands a finished trial's last result to on_trial_complete too
            self._times[trial_id] = t
        if EPOCH in result:
            self._epochs[trial_id] = float(result[EPOCH])
        value = result.get(self.metric)
        if value is None or not math.isfinite(value):
            return
        self._note_best(trial_id, float(value))
        if result.get(CHECKPOINT_SCORE, NOT_BEST_SCORE) > NOT_BEST_SCORE and result.get("checkpoint_dir_name"):
            self._set_attr(trial_id, study.CHECKPOINT, f"{trial_id}/{result['checkpoint_dir_name']}")  # the one Ray keeps
        step = self._step(trial_id, result)
        reported = self._reported.setdefault(trial_id, set())
        if step not in reported:
            self._report(trial_id, float(value), step)
            reported.add(step)
        if self._rung(result) >= 1:
            self._first_rung_value.setdefault(trial_id, float(value))

    def _report(self, trial_id: str, value: float, step: int) -> None:
        import optuna

        try:
            self._ot_trials[trial_id].report(value, step)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass

    def _note_best(self, trial_id: str, value: float) -> None:
        best = self._best_value.get(trial_id)
        self._best_value[trial_id] = value if best is None else better(self._mode)(best, value)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        if trial_id not in self._ot_trials:  # asked after the state a resumed searcher was restored from
            self._completed_trials.add(trial_id)
            return
        if self._feedback == "stock" or trial_id in self._completed_trials:
            return super().on_trial_complete(trial_id, result, error)
        ot_trial = self._ot_trials[trial_id]
        if result and not error:  # Tune never passes the result a scheduler stopped the trial on to
            self.on_trial_result(trial_id, result)  # on_trial_result: it is the value ASHA judged at a rung
        finished = bool(result and not error and result.get("final"))
        self._set_attr(trial_id, study.OUTCOME, "error" if error else "finished" if finished else "stopped")
        self._set_attr(trial_id, study.EPOCHS, self._epochs.get(trial_id, 0.0))
        if error or not result:
            state, value = TrialState.FAIL if error else TrialState.PRUNED, None
        elif self._feedback == "rung" and self._milestones:  # without ASHA (fifo) there are no rungs: as pruned
            value = self._first_rung_value.get(trial_id)
            state = TrialState.COMPLETE if value is not None else TrialState.PRUNED
        else:  # a finished trial is worth its best validation (the value its kept checkpoint has),
            value = self._best_value.get(trial_id)  # its last result included (on_trial_result above)
            state = TrialState.COMPLETE if finished and value is not None else TrialState.PRUNED
        self._ot_study.tell(ot_trial, value if state == TrialState.COMPLETE else None, state=state, skip_if_finished=True)
        self._completed_trials.add(trial_id)

    # --- the study in the run: saved with the searcher's state, reopened where the run is now ------

    def relocate(self, run) -> None:
        """Where the run is now (`pairtune resume`: it may have been moved or copied since the search
        started); `restore` reopens the study there."""
        self._run = run

    def save(self, checkpoint_path: str):
        super().save(checkpoint_path)
        if self._run is not None:  # a run on shared storage gets the journal before Ray uploads this state
            study.publish(self._run)

    def restore(self, checkpoint_path: str):
        run = self._run  # set by relocate (or at construction); the saved state holds where the run was
        super().restore(checkpoint_path)
        self._run = run
        if run is not None:
            self._reopen_study()

    def _reopen_study(self) -> None:
        """The study over the run's journal (for a run on shared storage, its copy there, saved with this
        state), the restored Optuna trials bound to it, and trials no one will finish marked FAIL."""
        import optuna

        if storage.is_uri(self._run):
            study.fetch(self._run)
        self._storage = study.journal_storage(study.study_file(self._run))
        self._ot_study = optuna.load_study(study_name=self._study_name, storage=self._storage,
                                           sampler=self._ot_study.sampler, pruner=optuna.pruners.NopPruner())
        stored = {t._trial_id: t for t in self._ot_study.get_trials(deepcopy=False)}
        self._ot_trials = {tid: optuna.Trial(self._ot_study, t._trial_id) for tid, t in self._ot_trials.items()
                           if t._trial_id in stored}
        continuing = {t._trial_id for tid, t in self._ot_trials.items() if tid not in self._completed_trials}
        lost = [t for t in stored.values() if t.state == TrialState.RUNNING and t._trial_id not in continuing]
        for t in lost:  # started after the state this searcher was restored from: Tune does not know them
            self._storage.set_trial_user_attr(t._trial_id, study.OUTCOME, "lost")
            self._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            if t.system_attrs.get("fixed_params"):  # a point to evaluate (or a warm start's best): queued again
                self._ot_study.enqueue_trial(t.system_attrs["fixed_params"])
        if lost:
            log.info("study %s: %d trial(s) left running by the stopped driver marked FAIL: %s", self._study_name,
                     len(lost), ", ".join(str(t.number) for t in lost))


def make_searcher(cfg: PairtuneConfig, run=None, **tpe_options):
    """Optuna's TPE (multivariate, seeded) or random sampler, told the truth about stopped trials
    (search.stopped_trials, see search/tune/searcher.py), its study kept in `run`'s journal (None: in
    memory, for tests and benchmarks). `tpe_options` go to TPESampler (benchmarks)."""
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
        time_attr=time_attr(cfg),
        milestones=asha_milestones(cfg),
        study_name=s.name,
        run=run,
        warm_start=(s.warm_start, study.completed_trials(storage.location(s.warm_start))) if s.warm_start else None,
    )


def extendable(searcher, max_concurrent: int | None):
    """What Tune runs: `searcher` limited to `max_concurrent` trials at once (Ray's ConcurrencyLimiter,
    as TuneConfig.max_concurrent_trials would add), in an ExtendableSearch (`pairtune extend`). None
    when nothing is searched (Tune's own generator runs the repeats)."""
    if searcher is None:
        return None
    from ray.tune.search import ConcurrencyLimiter, SearchGenerator

    class ExtendableSearch(SearchGenerator):
        """Tune's generator of trials, which counts the trials it started against num_samples. A
        restored search gets that count from the run; `extend(n)` lets it start n more. The run's
        count is read after this object is unpickled, so the n are added when it is."""

        def __init__(self, searcher):
            super().__init__(searcher)
            self._more = 0

        def extend(self, n: int) -> None:
            self._more = n

        def restore_from_dir(self, dirpath: str):
            more = getattr(self, "_more", 0)
            super().restore_from_dir(dirpath)
            if more:
                self._total_samples += more
                self._finished = False
                self._more = 0

    if max_concurrent:
        searcher = ConcurrencyLimiter(searcher, max_concurrent=max_concurrent)
    return ExtendableSearch(searcher)
