"""The W&B tracker callback on its own (no Ray, no search): one offline W&B run per trial, kept side by
side in the driver, and never an error raised into the search. tests/test_trackers.py checks the
trackers of a real search."""

import logging

import pytest
from ray import cloudpickle

from model.metrics import AGREEMENT
from search.tune.tracking import wandb_callback


class Trial:
    """What the callback reads of a Ray Tune trial: its id, sampled config and name."""

    def __init__(self, trial_id, lr):
        self.trial_id, self.config = trial_id, {"train.lr": lr}

    def __str__(self):
        return f"{self.trial_id}_lr={self.config['train.lr']}"


@pytest.fixture
def finished(monkeypatch):
    """{trial id: the exit code its W&B run finished with}, recorded around the real wandb.init."""
    import wandb

    codes, init = {}, wandb.init

    def recording_init(**kwargs):
        run = init(**kwargs)
        finish = run.finish
        run.finish = lambda exit_code=None, **kw: (codes.__setitem__(kwargs["id"], exit_code), finish(exit_code=exit_code, **kw))[1]
        return run

    monkeypatch.setattr(wandb, "init", recording_init)
    return codes


def test_each_trial_gets_its_own_offline_run_in_the_driver(tmp_path, finished):
    callback = wandb_callback("pairtune-test", "search", "offline", str(tmp_path))
    good, bad, stopped = Trial("aaa00001", 1e-3), Trial("aaa00002", 1e30), Trial("aaa00003", 2e-3)
    for t in (good, bad, stopped):  # three trials running at once
        callback.on_trial_start(0, [], t)
    for step in (1, 2):
        callback.on_trial_result(step, [], good, {AGREEMENT: 0.5 + step / 10, "training_iteration": step,
                                                 "config": {"train.lr": 1e-3}, "done": False, "hostname": "h"})
    callback.on_trial_result(1, [], stopped, {AGREEMENT: 0.55, "training_iteration": 1})
    assert cloudpickle.loads(cloudpickle.dumps(callback))._runs == {}  # Ray pickles callbacks (as it saves a search)
    callback.on_trial_error(3, [], bad)
    callback.on_trial_complete(3, [], good)
    callback.on_experiment_end([good, bad, stopped])  # a search stopped early: the running trial's run ends
    assert finished == {"aaa00001": 0, "aaa00002": 1, "aaa00003": 0}
    runs = {d.name.rsplit("-", 1)[-1]: d for d in (tmp_path / "wandb").glob("offline-run-*")}
    assert set(runs) == {"aaa00001", "aaa00002", "aaa00003"}
    assert AGREEMENT.encode() in next(runs["aaa00001"].glob("run-*.wandb")).read_bytes()


def test_a_wandb_failure_is_logged_and_never_raised(tmp_path, monkeypatch, caplog):
    import wandb

    def broken(**kwargs):
        raise wandb.errors.CommError("api.wandb.ai is unreachable")

    monkeypatch.setattr(wandb, "init", broken)
    callback = wandb_callback("pairtune-test", "search", "online", str(tmp_path))
    trial = Trial("bbb00001", 1e-3)
    with caplog.at_level(logging.WARNING, logger="search.tune.tracking"):
        callback.on_trial_start(0, [], trial)
        callback.on_trial_result(1, [], trial, {AGREEMENT: 0.6, "training_iteration": 1})
        callback.on_trial_complete(1, [], trial)
        callback.on_experiment_end([trial])
    assert "W&B: no run for trial bbb00001_lr=0.001: CommError: api.wandb.ai is unreachable" in caplog.text
