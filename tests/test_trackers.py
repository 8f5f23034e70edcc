"""Trackers of a real search (local Ray, tiny BERT, real Ruddit votes): TensorBoard event files per
trial, Weights & Biases in offline mode (no network) and MLflow with a local SQLite store, all through
the config; plus the baseline in the search summary."""

import json

import pytest
from conftest import SHARED_TRIALS
from runfiles import read_leaderboard

from model.metrics import AGREEMENT

pytestmark = pytest.mark.slow

TRIALS = SHARED_TRIALS  # conftest's small_search, the search the whole run shares


@pytest.fixture(scope="module")
def tracked_run(small_search):
    """(run, the trials that reported results, CompletedProcess); every trial's id is in `errored` or `trials`."""
    run, out = small_search.run, small_search.out
    assert len([p for p in run.iterdir() if (p / "result.json").exists()]) == TRIALS
    board = read_leaderboard(run / "export" / "leaderboard.csv")
    errored = set(board.trial_id[board.outcome == "error"])
    assert len(errored) == 2  # a NaN loss and a broken backbone (test_failing_trials), before any result
    trials = sorted(run / t for t in board.trial_id if t not in errored)
    assert all(_results(t) for t in trials)
    return run, trials, out, errored


def _results(trial):
    return [json.loads(line) for line in (trial / "result.json").read_text().splitlines() if line.strip()]


def test_every_trial_writes_tensorboard_events_with_agreement(tracked_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, trials, _, _ = tracked_run
    for trial in trials:
        events = list((trial / "lightning").rglob("events.out.tfevents.*"))
        assert events, f"no TensorBoard events in {trial}"
        acc = EventAccumulator(str(events[0].parent))
        acc.Reload()
        assert AGREEMENT in acc.Tags()["scalars"]
        logged = [e.value for e in acc.Scalars(AGREEMENT)]
        reported = [r[AGREEMENT] for r in _results(trial)]
        assert logged == pytest.approx(reported, abs=1e-6)  # the same validations Tune saw


def test_wandb_offline_logs_each_trial(tracked_run):
    run, trials, _, errored = tracked_run
    offline = sorted((run / "wandb").glob("offline-run-*"))
    assert len(offline) == TRIALS
    ids = {t.name for t in trials} | errored  # the failed trials too: a W&B run starts with its trial
    assert {d.name.rsplit("-", 1)[-1] for d in offline} == ids  # one W&B run per trial, named by trial id
    for d in offline:
        if d.name.rsplit("-", 1)[-1] in errored:
            continue
        log = next(d.glob("run-*.wandb")).read_bytes()
        assert AGREEMENT.encode() in log


def test_mlflow_store_has_each_trials_agreement(tracked_run):
    from mlflow.tracking import MlflowClient

    run, trials, _, errored = tracked_run
    client = MlflowClient(tracking_uri=f"sqlite:///{run / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(run.name)  # the search name
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == TRIALS
    by_trial = {r.data.tags.get("trial_name", r.info.run_name).split("_")[0]: r for r in runs}
    assert {t for t, r in by_trial.items() if r.info.status == "FAILED"} == errored  # the failed trials say so
    last = {t.name: _results(t)[-1][AGREEMENT] for t in trials}
    got = {t: r.data.metrics[AGREEMENT] for t, r in by_trial.items() if t not in errored}
    assert got == pytest.approx(last)
    for trial in trials:  # every result, at its training_iteration, one timestamp for all its numbers
        results = _results(trial)
        run_id = by_trial[trial.name].info.run_id
        history = sorted(client.get_metric_history(run_id, AGREEMENT), key=lambda m: m.step)
        assert [m.step for m in history] == [r["training_iteration"] for r in results]
        assert [m.value for m in history] == pytest.approx([r[AGREEMENT] for r in results])
        losses = sorted(client.get_metric_history(run_id, "val/loss"), key=lambda m: m.step)
        assert [m.timestamp for m in losses] == [m.timestamp for m in history]


def test_summary_has_the_baseline(tracked_run):
    run, _, out, _ = tracked_run
    summary = json.loads((run / "export" / "summary.json").read_text())
    baseline = summary["baseline"]
    assert baseline["baseline"] == "tfidf_ridge" and 0.0 <= baseline["agreement"] <= 1.0
    assert json.loads((run / "pairtune_baseline.json").read_text()) == baseline
    assert f"{baseline['agreement']:.4f}" in out.stdout and "over the baseline" in out.stdout
