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
    restored.suggest("next")
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
