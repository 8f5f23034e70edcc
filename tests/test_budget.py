"""What Optuna is told about stopped trials (search/tune/searcher.py) and the budgets that end a search
(search/tune/budget.py), unit by unit. The same machinery in a real Ray Tune search (a search ended by its
target, its end file, export and what the CLI prints) is tested over the analytic stand-in in
tests/test_search_machinery.py."""

import pytest
from optuna.trial import TrialState

from model.metrics import AGREEMENT
from search.config.parse import parse_config
from search.runs.layout import END_FILE, ended_by
from search.tune.budget import SearchBudget
from search.tune.scheduler import asha_milestones, rung_milestones
from search.tune.searcher import make_searcher


def config(**search):
    raw = {
        "data": {"pairs": "demo"},
        "train": {"epochs": 4},
        "search": {"space": {"train.lr": {"loguniform": [1e-5, 1e-3]}}, "grace_period": 1, "reduction_factor": 2,
                   **search},
    }
    return parse_config(raw, "t.yaml")


def run(searcher, trial_id, results, error=False):
    assert searcher.suggest(trial_id) is not None
    for i, (epoch, value, final) in enumerate(results):  # as Tune reports them
        searcher.on_trial_result(trial_id, {AGREEMENT: value, "epoch": epoch, "final": final, "training_iteration": i + 1})
    last = results[-1]
    searcher.on_trial_complete(trial_id, None if error else {AGREEMENT: last[1], "epoch": last[0], "final": last[2]},
                               error=error)


def trials(searcher):
    return {t.number: t for t in searcher._ot_study.get_trials(deepcopy=False)}


def test_rung_milestones():
    assert rung_milestones(1, 2, 4) == [1, 2, 4]
    assert rung_milestones(0.5, 3, 4) == [0.5, 1.5]
    assert asha_milestones(config()) == [1, 2, 4]
    assert asha_milestones(config(scheduler="fifo")) == []


def test_pruned_feedback_tells_optuna_the_truth():
    s = make_searcher(config())  # the default: stopped_trials = pruned
    # Finished: COMPLETE with its best value (here also its last).
    run(s, "a", [(0.5, 0.55, False), (1.02, 0.60, False), (2.01, 0.66, False), (4.0, 0.70, True)])
    # Stopped by ASHA after its second rung: PRUNED, with the value it had when it reached each rung.
    run(s, "b", [(0.5, 0.58, False), (1.03, 0.64, False), (1.5, 0.65, False), (2.05, 0.67, False)])
    # Crashed: FAIL.
    run(s, "c", [(0.5, 0.5, False)], error=True)
    t = trials(s)
    assert t[0].state == TrialState.COMPLETE and t[0].value == pytest.approx(0.70)
    assert t[1].state == TrialState.PRUNED and t[1].value == pytest.approx(0.67)  # Optuna: its last rung value
    # every validation at step = thousandths of an epoch, the first past a rung at the rung's own step:
    # the value ASHA compared there
    assert t[1].intermediate_values == {500: pytest.approx(0.58), 1000: pytest.approx(0.64), 1500: pytest.approx(0.65),
                                        2000: pytest.approx(0.67)}
    assert t[2].state == TrialState.FAIL
    # Another batch size validates at other epochs; stopped at the same rung, it ends on the same step,
    # so TPE (which ranks a pruned trial by its last step, then its value there) compares their values.
    run(s, "d", [(0.6, 0.52, False), (1.2, 0.61, False), (1.8, 0.66, False), (2.4, 0.69, False)])
    assert trials(s)[3].intermediate_values == {600: pytest.approx(0.52), 1000: pytest.approx(0.61),
                                                1800: pytest.approx(0.66), 2000: pytest.approx(0.69)}


@pytest.mark.parametrize("feedback,scheduler", [("pruned", "asha"), ("rung", "fifo")])
def test_a_finished_trial_is_worth_its_best_value_as_in_the_leaderboard(feedback, scheduler):
    """TPE is told what the leaderboard, the kept checkpoint and the export use: the best validation."""
    s = make_searcher(config(stopped_trials=feedback, scheduler=scheduler))
    run(s, "a", [(1.0, 0.60, False), (2.0, 0.74, False), (4.0, 0.69, True)])  # peaked, then fell
    assert trials(s)[0].state == TrialState.COMPLETE and trials(s)[0].value == pytest.approx(0.74)


def test_best_value_follows_the_mode_for_val_loss():
    s = make_searcher(config(metric="val/loss", mode="min"))
    assert s.suggest("a") is not None
    for i, (epoch, loss, final) in enumerate([(1.0, 0.50, False), (2.0, 0.41, False), (4.0, 0.45, True)]):
        s.on_trial_result("a", {"val/loss": loss, "epoch": epoch, "final": final, "training_iteration": i + 1})
    s.on_trial_complete("a", {"val/loss": 0.45, "epoch": 4.0, "final": True})
    assert trials(s)[0].value == pytest.approx(0.41)


def test_rung_feedback_compares_every_trial_at_the_first_rung():
    s = make_searcher(config(stopped_trials="rung"))
    run(s, "a", [(1.0, 0.60, False), (2.0, 0.66, False), (4.0, 0.70, True)])
    run(s, "b", [(1.1, 0.64, False), (2.0, 0.67, False)])
    run(s, "c", [(0.5, 0.55, False)])  # ended before any rung: nothing comparable
    t = trials(s)
    assert (t[0].state, t[0].value) == (TrialState.COMPLETE, pytest.approx(0.60))
    assert (t[1].state, t[1].value) == (TrialState.COMPLETE, pytest.approx(0.64))
    assert t[2].state == TrialState.PRUNED


def test_rung_feedback_without_asha_judges_finished_trials_by_their_value():
    s = make_searcher(config(stopped_trials="rung", scheduler="fifo"))
    run(s, "a", [(1.0, 0.60, False), (4.0, 0.70, True)])
    t = trials(s)
    assert (t[0].state, t[0].value) == (TrialState.COMPLETE, pytest.approx(0.70))


def test_stock_feedback_is_rays():
    s = make_searcher(config(stopped_trials="stock"))
    run(s, "b", [(1.1, 0.64, False), (2.0, 0.67, False)])
    t = trials(s)
    assert (t[0].state, t[0].value) == (TrialState.COMPLETE, pytest.approx(0.67))  # the early value, as if final


def test_search_budget_target_and_epochs(tmp_path):
    end = tmp_path / END_FILE
    b = SearchBudget(AGREEMENT, "epoch", str(end), target=0.8, epoch_budget=5)
    assert not b.stop_all()
    b("t1", {AGREEMENT: 0.7, "epoch": 1.0})
    b("t1", {AGREEMENT: 0.75, "epoch": 2.0})
    b("t2", {AGREEMENT: 0.6, "epoch": 2.5})
    assert b.epochs_total == pytest.approx(4.5) and not b.stop_all() and not end.exists()
    b("t2", {AGREEMENT: 0.81, "epoch": 3.0})  # target first, then the epoch budget: the first one wins
    assert b.stop_all()
    assert ended_by(tmp_path) == {"ended_by": "target", "target": 0.8, "trial_id": "t2", "value": 0.81,
                                  "epochs_total": 5.0}

    b = SearchBudget(AGREEMENT, "epoch", None, epoch_budget=2)
    b("t1", {AGREEMENT: 0.5, "epoch": 1.5})
    assert not b.stop_all()
    b("t2", {AGREEMENT: 0.5, "epoch": 0.5})
    assert b.stop_all() and b.ended_by["ended_by"] == "epoch_budget"


def test_search_budget_time(tmp_path):
    b = SearchBudget(AGREEMENT, "epoch", str(tmp_path / END_FILE), time_budget_s=0.2)
    assert not b.stop_all()
    import time

    time.sleep(0.3)
    assert b.stop_all()
    assert ended_by(tmp_path)["ended_by"] == "time_budget"
    assert ended_by(tmp_path / "nowhere") == {"ended_by": None}


def test_budget_keys_are_validated():
    from search.config.parse import ConfigError

    for bad in ({"target": 1.5}, {"epoch_budget": 0}, {"stopped_trials": "maybe"}):
        with pytest.raises(ConfigError) as e:
            config(**bad)
        assert f"search.{next(iter(bad))}" in str(e.value)
