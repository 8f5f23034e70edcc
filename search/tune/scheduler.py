"""ASHA (or FIFO) for a search: when its rungs compare trials (epochs, or seconds of a trial's wall time
with search.time_attr: seconds), and the trials it stops early, written to the run's STOPS_FILE so the
leaderboard can say which trials ASHA stopped."""

from __future__ import annotations

import dataclasses
import itertools
import json
from types import SimpleNamespace
from typing import TYPE_CHECKING

from search.config.parse import PairtuneConfig
from search.config.space import possible_values
from search.runs import storage
from search.runs.layout import EPOCH, STOPS_FILE, WALL, run_dir

if TYPE_CHECKING:
    from data.prepare import PreparedData

SECONDS_RUNGS = 20  # with time_attr seconds there is no last epoch: rungs up to grace * reduction_factor ** 20


def rung_milestones(grace_period: float, reduction_factor: float, max_t: float) -> list[float]:
    """ASHA's rungs: grace * rf^k up to max_t."""
    out, t = [], grace_period
    while t <= max_t * (1 + 1e-9):
        out.append(t)
        t *= reduction_factor
    return out


def time_attr(cfg: PairtuneConfig) -> str:
    """The result key ASHA counts in: EPOCH, or WALL (the trial's wall time) with time_attr: seconds."""
    return WALL if cfg.search.time_attr == "seconds" else EPOCH


def _max_t(cfg: PairtuneConfig) -> float:
    """ASHA's last rung: the most epochs a trial can train, or in seconds, far beyond any trial's time
    (a trial then trains its epochs, and ASHA never stops one for having reached max_t)."""
    if cfg.search.time_attr == "seconds":
        return cfg.search.grace_period * cfg.search.reduction_factor ** SECONDS_RUNGS
    return float(max(possible_values(cfg, "train.epochs")))


def asha_milestones(cfg: PairtuneConfig) -> list[float]:
    """When ASHA compares trials, in time_attr's unit (none with the FIFO scheduler)."""
    if cfg.search.scheduler != "asha":
        return []
    max_t = _max_t(cfg)
    return rung_milestones(min(cfg.search.grace_period, max_t), cfg.search.reduction_factor, max_t)


LATE_RUNG = 0.1  # a rung first judged more than this fraction of itself after it is worth a warning
LATE_RUNG_KEYS = ("batch_size", "accumulate_grad_batches", "val_every_n_steps", "epochs", "loss")  # when a trial validates


def late_rungs(cfg: PairtuneConfig, prepared: PreparedData, world: int = 1) -> list[str]:
    """Where trials report too long after one of ASHA's rungs (in epochs): ASHA judges a trial at the
    first result at or past a rung, so a validation that falls just short of it (0.49 epochs for a
    0.5 rung) moves the decision to the next one. One line per setting and rung affected, over every
    value of the keys that decide when a trial validates (LATE_RUNG_KEYS) the search can draw; none
    with time_attr seconds or without ASHA. world: the processes each trial trains with (they share each batch)."""
    from model.epochs import train_items, validation_epochs
    from model.losses import POINTWISE_LOSSES

    milestones = asha_milestones(cfg)
    if cfg.search.time_attr == "seconds" or not milestones:
        return []
    data = prepared.fold_inputs(*next(iter(prepared.tokens)))  # any tokenisation: the counts are the same
    out = []
    for values in itertools.product(*(possible_values(cfg, f"train.{k}") for k in LATE_RUNG_KEYS)):
        chosen = {k: v if k == "loss" or v is None else int(v) for k, v in zip(LATE_RUNG_KEYS, values)}
        train = dataclasses.replace(cfg.train, **chosen)
        n = train_items(data, train)
        reports = validation_epochs(n, train, world)
        for rung in milestones:
            judged = next((e for e in reports if e >= rung - 1e-9), None)
            if judged is not None and judged > rung * (1 + LATE_RUNG):
                shown = ", ".join(f"{e:g}" for e in reports[:4]) + (", ..." if len(reports) > 4 else "")
                out.append(f"ASHA's rung at {rung:g} epochs comes late for trials with train.batch_size {train.batch_size}: "
                           f"they validate at epochs {shown} ({n} training {'texts' if train.loss in POINTWISE_LOSSES else 'votes'}, "
                           f"train.val_every_n_steps {train.val_every_n_steps}), so ASHA first judges them at epoch {judged:g}. "
                           "Choose search.grace_period, reduction_factor or train.val_every_n_steps so that a "
                           "validation lands on each rung")
    return list(dict.fromkeys(out))


def _recording_asha():
    from ray.tune.schedulers import ASHAScheduler, TrialScheduler

    class RecordingASHA(ASHAScheduler):
        """ASHA that writes down each trial it stops early, so the leaderboard can say so exactly."""

        def __init__(self, stops_file: str, **kwargs):
            super().__init__(**kwargs)
            self.stops_file = stops_file

        def remember(self, points: dict[str, list[tuple[float, float]]], mode: str) -> None:
            """Ray saves no scheduler state: a restored search's ASHA starts with empty rungs, so the
            trials that come after resume or extend would be judged against no one. This replays each
            trial's results, (time, value) in the order it reported them, through ASHA's own
            bookkeeping, which records the rung values it had recorded (decisions are not replayed)."""
            assert len(self._brackets) == 1, "pairtune's ASHA has one bracket"
            sign = 1.0 if mode == "max" else -1.0  # ASHA's metric_op: it keeps higher-is-better values
            for trial_id, results in points.items():
                trial = SimpleNamespace(trial_id=trial_id)
                for epoch, value in results:
                    self._brackets[0].on_result(trial, epoch, sign * value)

        def rung_values(self) -> list[tuple[float, dict]]:
            """(time, {trial id: value ASHA recorded there}) per rung, highest first, values as ASHA
            compares them (higher is better)."""
            return [(milestone, dict(recorded)) for milestone, recorded in self._brackets[0]._rungs]

        def on_trial_result(self, tune_controller, trial, result: dict) -> str:
            action = super().on_trial_result(tune_controller, trial, result)
            if action == TrialScheduler.STOP and not result.get("final"):
                stop = {"trial_id": trial.trial_id, EPOCH: result.get(EPOCH), "by": "asha"}
                storage.append_line(self.stops_file, json.dumps(stop))
            return action

    return RecordingASHA


def make_scheduler(cfg: PairtuneConfig):
    from ray.tune.schedulers import FIFOScheduler

    if cfg.search.scheduler == "fifo":
        return FIFOScheduler()
    max_t = _max_t(cfg)
    return _recording_asha()(
        stops_file=str(storage.join(run_dir(cfg), STOPS_FILE)),
        time_attr=time_attr(cfg),
        max_t=max_t,
        grace_period=min(cfg.search.grace_period, max_t),
        reduction_factor=cfg.search.reduction_factor,
    )
