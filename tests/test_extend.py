"""`pairtune extend RUN --trials N`: more trials in a finished search, TPE keeping its history (the study
in the run) and ASHA its rungs (which Ray does not save: pairtune replays them, for `pairtune resume`
too). The real extension runs on a copy of the shared search."""

import json
import logging

import optuna
import pytest
import yaml
from conftest import SHARED_TRIALS
from runfiles import read_leaderboard

from model.metrics import AGREEMENT
from search.config.parse import parse_config
from search.runs import study
from search.tune.scheduler import make_scheduler


def asha(tmp_path):
    (tmp_path / "a").mkdir(exist_ok=True)  # the run directory, where ASHA writes its stops
    cfg = parse_config({"data": {"pairs": "demo"}, "train": {"epochs": 4},
                        "search": {"name": "a", "storage_path": str(tmp_path), "space": {"train.lr": {"loguniform": [1e-5, 1e-3]}},
                                   "grace_period": 1, "reduction_factor": 2}}, "t.yaml")
    scheduler = make_scheduler(cfg)
    scheduler.set_search_properties(AGREEMENT, "max")
    return scheduler


class Trial:
    def __init__(self, trial_id):
        self.trial_id = trial_id


def test_a_restored_asha_judges_new_trials_against_the_rungs_earlier_ones_reached(tmp_path):
    earlier = {"a": [(0.5, 0.60), (1.0, 0.70), (2.0, 0.74)], "b": [(1.0, 0.66)], "c": [(1.0, 0.68), (2.0, 0.72)]}
    restored = asha(tmp_path)
    restored.remember(earlier, "max")
    assert restored.rung_values()[-1] == (1.0, {"a": 0.70, "b": 0.66, "c": 0.68})  # each at its first result past 1
    assert restored.rung_values()[-2] == (2.0, {"a": 0.74, "c": 0.72})
    new = Trial("new")
    restored.on_trial_add(None, new)
    assert restored.on_trial_result(None, new, {AGREEMENT: 0.65, "epoch": 1.0}) == "STOP"  # below the rung's median
    fresh = asha(tmp_path)  # what Ray restores: a scheduler with empty rungs lets it through
    fresh.on_trial_add(None, new)
    assert fresh.on_trial_result(None, new, {AGREEMENT: 0.65, "epoch": 1.0}) == "CONTINUE"


@pytest.mark.slow
def test_extend_adds_trials_to_a_finished_search_with_tpe_and_asha_keeping_their_history(shared_run_copy, small_search,
                                                                                           shared_local_ray, run_cli, own_environ,
                                                                                           caplog):
    run = shared_run_copy  # a copy: the trackers (W&B offline, MLflow) write into it, not where the search ran
    before = {p.parent.name: (p.parent / "result.json").read_text() for p in run.glob("*/params.json")}
    caplog.set_level(logging.INFO, logger="search")
    out = run_cli("extend", run, "--trials", "1")  # one: each new trial is a fresh trial process (~9 CPU-s)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    # the two failing trials reported nothing
    assert "ASHA remembers the rung values of 5 earlier trial(s)" in caplog.text

    board = read_leaderboard(run / "export" / "leaderboard.csv")
    assert len(board) == SHARED_TRIALS + 1
    added = set(board.trial_id) - set(before)
    assert len(added) == 1
    for trial_id, results in before.items():  # the earlier trials were not rerun
        assert (run / trial_id / "result.json").read_text() == results
    assert yaml.safe_load((run / "pairtune_config.yaml").read_text())["search"]["num_samples"] == SHARED_TRIALS + 1
    assert json.loads((run / "export" / "summary.json").read_text())["ended_by"] == "num_samples"

    import mlflow

    def tracked(directory):  # W&B offline runs, MLflow runs
        client = mlflow.MlflowClient(f"sqlite:///{directory / 'mlflow.db'}")
        return (len(list((directory / "wandb").glob("offline-run-*"))),
                len(client.search_runs([e.experiment_id for e in client.search_experiments()])))

    assert tracked(run) == (SHARED_TRIALS + 1, SHARED_TRIALS + 1)
    assert tracked(small_search.run) == (SHARED_TRIALS, SHARED_TRIALS)  # nothing written where the search first ran

    loaded = optuna.load_study(study_name="shared", storage=study.journal_storage(run / study.STUDY_FILE))
    trials = loaded.get_trials()
    assert [t.number for t in trials] == list(range(SHARED_TRIALS + 1)) and all(t.state.is_finished() for t in trials)
    assert {t.user_attrs[study.TUNE_TRIAL_ID] for t in trials[SHARED_TRIALS:]} == added  # asked from the same study


def test_extend_without_a_run_or_a_positive_count_is_a_clear_error(tmp_path, run_cli):
    out = run_cli("extend", tmp_path, "--trials", "0")
    assert out.returncode == 2 and "--trials: must be at least 1, got 0" in out.stderr
    out = run_cli("extend", tmp_path, "--trials", "2")
    assert out.returncode == 2 and f"{tmp_path}: not a pairtune run directory" in out.stderr and not out.started_ray
