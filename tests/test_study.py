"""The Optuna study a search keeps in its run (search/runs/study.py, search/tune/searcher.py), unit by
unit over the searcher itself: what each trial carries, and what `pairtune resume` finds when it reopens
the study (a moved run, trials a killed driver left running, a journal ahead of the saved searcher).
The same in real searches: tests/test_search.py (the shared search's study), tests/test_resume.py (a
killed driver), tests/test_shipped_configs.py (a run on S3)."""

import shutil

import optuna
import pytest
from optuna.trial import TrialState

from model.metrics import AGREEMENT
from search.config.parse import parse_config
from search.runs import study
from search.runs.layout import CHECKPOINT_SCORE, NOT_BEST_SCORE
from search.tune.searcher import make_searcher


def config(name="s"):
    return parse_config({
        "data": {"pairs": "demo"},
        "train": {"epochs": 2},
        "search": {"name": name, "space": {"train.lr": {"loguniform": [1e-5, 1e-3]}}, "grace_period": 1,
                   "reduction_factor": 2},
    }, "t.yaml")


def searcher_over(run, name="s"):
    s = make_searcher(config(name), run=run)
    s.set_search_properties(None, None, {})  # what Tune does first: the study is created (or reopened)
    return s


def result(epoch, value, best=True, checkpoint=None, final=False):
    return {AGREEMENT: value, "epoch": epoch, "final": final, CHECKPOINT_SCORE: value if best else NOT_BEST_SCORE,
            "checkpoint_dir_name": checkpoint}


def stored(run, name="s"):
    loaded = optuna.load_study(study_name=name, storage=study.journal_storage(run / study.STUDY_FILE))
    return {t.user_attrs.get(study.TUNE_TRIAL_ID): t for t in loaded.get_trials()}


def test_each_trial_carries_its_tune_id_outcome_epochs_and_kept_checkpoint(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    s = searcher_over(run)
    s.suggest("a")
    s.on_trial_result("a", result(1.0, 0.61, checkpoint="checkpoint_000000"))
    s.on_trial_result("a", result(1.5, 0.66, checkpoint="checkpoint_000001"))
    s.on_trial_result("a", result(2.0, 0.64, best=False, checkpoint="checkpoint_000002", final=True))
    s.on_trial_complete("a", result(2.0, 0.64, best=False, checkpoint="checkpoint_000002", final=True))
    s.suggest("b")
    s.on_trial_result("b", result(1.0, 0.50, checkpoint="checkpoint_000000"))
    s.on_trial_complete("b", result(1.0, 0.50, checkpoint="checkpoint_000000"))  # stopped by ASHA at its rung
    s.suggest("c")
    s.on_trial_complete("c", None, error=True)

    t = stored(run)  # read back from the journal file, as optuna-dashboard reads it
    assert optuna.load_study(study_name="s", storage=study.journal_storage(run / study.STUDY_FILE)).metric_names == [AGREEMENT]
    assert t["a"].state == TrialState.COMPLETE and t["a"].value == pytest.approx(0.66)
    assert t["a"].intermediate_values == {1000: pytest.approx(0.61), 1500: pytest.approx(0.66), 2000: pytest.approx(0.64)}
    assert t["a"].user_attrs == {study.TUNE_TRIAL_ID: "a", study.OUTCOME: "finished", study.EPOCHS: 2.0,
                                 study.CHECKPOINT: "a/checkpoint_000001"}  # the best validation's, which Ray keeps
    assert t["b"].state == TrialState.PRUNED and t["b"].user_attrs[study.OUTCOME] == "stopped"
    assert t["b"].user_attrs[study.CHECKPOINT] == "b/checkpoint_000000" and t["b"].user_attrs[study.EPOCHS] == 1.0
    assert t["c"].state == TrialState.FAIL and t["c"].user_attrs[study.OUTCOME] == "error"


def test_resume_reopens_the_study_where_the_run_is_now_and_fails_the_trials_no_one_will_finish(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    s = searcher_over(run)
    s.suggest("done")
    s.on_trial_complete("done", result(2.0, 0.7, final=True))
    s.suggest("running")  # Tune's saved state knows it: it continues from its checkpoint after resume
    s.on_trial_result("running", result(1.0, 0.6))
    s.suggest("ahead")  # finishes after the save below: the journal is ahead of the saved searcher
    s.save_to_dir(str(run))  # what Ray does at each experiment checkpoint
    s.on_trial_complete("ahead", result(2.0, 0.65, final=True))
    s._ot_study.enqueue_trial({"train.lr": 2e-4})  # a point to evaluate, still waiting when the state was saved
    s.suggest("lost")  # asked after the save: the killed driver's Tune state never had it

    moved = tmp_path / "moved" / "run"  # the user moves the run before resuming
    shutil.copytree(run, moved)
    restored = make_searcher(config(), run=run)  # as unpickled from the run's tuner.pkl: the old place
    restored.relocate(moved)  # pairtune resume: where the run is now
    restored.restore_from_dir(str(moved))

    t = stored(moved)
    assert t["lost"].state == TrialState.FAIL and t["lost"].user_attrs[study.OUTCOME] == "lost"
    assert t["running"].state == TrialState.RUNNING and t["done"].state == TrialState.COMPLETE
    restored.on_trial_result("running", result(2.0, 0.68, final=True))
    restored.on_trial_complete("running", result(2.0, 0.68, final=True))
    restored.on_trial_complete("ahead", result(2.0, 0.65, final=True))  # told already: no error, nothing changes
    assert restored.suggest("next") == {"train.lr": pytest.approx(2e-4)}  # the lost trial's point runs after all
    t = stored(moved)
    assert t["running"].state == TrialState.COMPLETE and t["running"].value == pytest.approx(0.68)
    assert t["ahead"].state == TrialState.COMPLETE and t["next"].state == TrialState.RUNNING
    assert [x.state for x in stored(moved).values()].count(TrialState.RUNNING) == 1
    assert stored(run)["lost"].state == TrialState.RUNNING and "next" not in stored(run)  # the old copy untouched


def test_a_run_on_s3_gets_the_journal_with_each_saved_state_and_resume_reads_it_back(s3_server, tmp_path, monkeypatch):
    monkeypatch.setenv("PAIRTUNE_CACHE", str(tmp_path / "cache"))  # the driver's disk
    run = f"s3://pairtune-test/study-unit/run{s3_server}"
    s = searcher_over(run)
    s.suggest("a")
    s.on_trial_result("a", result(1.0, 0.6))
    (tmp_path / "staging").mkdir()  # Ray's staging directory on the driver
    s.save_to_dir(str(tmp_path / "staging"))
    from search.runs import storage

    assert storage.exists(storage.join(run, study.STUDY_FILE))
    shutil.rmtree(tmp_path / "cache")  # resume on another machine: nothing on its disk
    restored = make_searcher(config(), run=run)
    restored.restore_from_dir(str(tmp_path / "staging"))
    restored.on_trial_result("a", result(2.0, 0.7, final=True))
    restored.on_trial_complete("a", result(2.0, 0.7, final=True))
    loaded = optuna.load_study(study_name="s", storage=study.journal_storage(study.fetch(run, tmp_path / "copy.journal")))
    assert [(t.state, t.value) for t in loaded.get_trials()] == [(TrialState.RUNNING, None)]  # not yet copied back
    restored.save_to_dir(str(tmp_path / "staging"))
    loaded = optuna.load_study(study_name="s", storage=study.journal_storage(study.fetch(run, tmp_path / "copy2.journal")))
    assert [(t.state, t.value) for t in loaded.get_trials()] == [(TrialState.COMPLETE, pytest.approx(0.7))]


def warm_config(earlier, space, name="w", **search):
    return parse_config({"data": {"pairs": "demo"}, "train": {"epochs": 2},
                         "search": {"name": name, "space": space, "warm_start": str(earlier), "grace_period": 1,
                                    "reduction_factor": 2, **search}}, "w.yaml")


def earlier_run(directory, trials, metric="val/agreement"):
    """A finished run's study as the searcher leaves it: (params, value or None for a pruned trial)."""
    directory.mkdir()
    (directory / "pairtune_config.yaml").write_text(f"data: {{pairs: demo}}\nsearch: {{metric: {metric}}}\n")
    earlier = optuna.create_study(study_name="earlier", direction="maximize",
                                  storage=study.journal_storage(directory / study.STUDY_FILE))
    lr = optuna.distributions.FloatDistribution(1e-6, 1e-2, log=True)
    loss = optuna.distributions.CategoricalDistribution(["margin", "logistic", "hinge"])
    for params, value in trials:
        state = TrialState.COMPLETE if value is not None else TrialState.PRUNED
        earlier.add_trial(optuna.trial.create_trial(params=params, distributions={"train.lr": lr, "train.loss": loss},
                                                    value=value, state=state))
    return directory


def test_a_warm_start_seeds_tpe_with_the_earlier_trials_that_fit_and_runs_the_earlier_best_first(tmp_path, caplog):
    earlier = earlier_run(tmp_path / "earlier", [
        ({"train.lr": 1e-4, "train.loss": "margin"}, 0.70),
        ({"train.lr": 3e-4, "train.loss": "logistic"}, 0.74),  # the best
        ({"train.lr": 5e-6, "train.loss": "margin"}, 0.66),  # lr below the new range: left out
        ({"train.lr": 2e-4, "train.loss": "hinge"}, 0.72),  # a loss the new space has not: left out
        ({"train.lr": 2e-4, "train.loss": "margin"}, None),  # pruned: only completed trials seed
    ])
    # The new space shares lr (narrowed) and loss, drops nothing else and adds margin.
    space = {"train.lr": {"loguniform": [1e-5, 1e-3]}, "train.loss": {"choice": ["margin", "logistic"]},
             "train.margin": {"uniform": [0.1, 1.0]}}
    run = tmp_path / "new"
    run.mkdir()
    with caplog.at_level("INFO", logger="search.tune.searcher"):
        new = make_searcher(warm_config(earlier, space), run=run)
        new.set_search_properties(None, None, {})
    seeded = optuna.load_study(study_name="w", storage=study.journal_storage(run / study.STUDY_FILE)).get_trials(
        states=(TrialState.COMPLETE,))
    assert sorted((t.params["train.lr"], t.value) for t in seeded) == [(1e-4, 0.70), (3e-4, 0.74)]
    assert all(t.user_attrs["warm_start_from"] == str(earlier) for t in seeded)
    assert "2 of its 4 completed trials seed the study (2 left out" in caplog.text
    first = new.suggest("first")  # the earlier best, its margin sampled (the earlier search did not search it)
    assert (first["train.lr"], first["train.loss"]) == (3e-4, "logistic") and 0.1 <= first["train.margin"] <= 1.0


def test_a_warm_start_that_cannot_work_is_a_clear_error_before_anything_runs(tmp_path):
    from search.tune.preflight import warm_start_problems

    space = {"train.lr": {"loguniform": [1e-5, 1e-3]}}
    assert warm_start_problems(warm_config(tmp_path / "nowhere", space)) == [f"{tmp_path / 'nowhere'}: no such run directory"]
    earlier = earlier_run(tmp_path / "earlier", [({"train.lr": 1e-4, "train.loss": "margin"}, None)], metric="val/loss")
    assert warm_start_problems(warm_config(earlier, space, metric="val/loss")) == [f"{earlier} has no completed trial to start from"]
    assert warm_start_problems(warm_config(earlier, space)) == [
        f"{earlier} searched val/loss, this search val/agreement: their values cannot seed each other"]
