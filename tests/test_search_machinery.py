"""pairtune's search machinery in a real local Ray Tune search, over the analytic stand-in trainable
(tests/standin.py) instead of a real model: seconds per search instead of a minute.

Each search is search/tune/tuner.py's own `make_tuner` (its searcher, ASHA scheduler, SearchBudget stopper,
checkpoint pruning, trial directories), only `make_trainable` is replaced by the stand-in; the run
directory is claimed by `fresh_run`, the search runs through `fit_and_sync` and ends with the CLI's
`_finish` (export and what it prints), as `pairtune search` does after preparing its data.
"""

import json

import numpy as np
import pytest
from optuna.trial import TrialState
from runfiles import read_leaderboard
from standin import GOOD, SLOW, SPACE, analytic_trial, validation_votes

from model.metrics import AGREEMENT
from search.config.parse import parse_config
from search.runs.layout import END_FILE, EPOCH, STOPS_FILE, ended_by, run_dir

pytestmark = pytest.mark.slow  # a local Ray: seconds per search, not the inner loop's milliseconds

EPOCHS = 4  # ASHA's rungs at epochs 1, 2, 4 (grace 1, reduction factor 2)
REPORT_AT = tuple(float(e) for e in range(1, EPOCHS + 1))
# Fails right after its first report (epoch 1, about 0.70: between GOOD's 0.76 and SLOW's 0.59).
FAILING = {**GOOD, "train.lr": 1e-5, "train.margin": 0.6}
FAIL_IF = {"train.margin": 0.5}


METRICS_PUSH_S = 0.5  # how often the module's Ray pushes metrics (Ray's default, 10 s, would make the test wait)


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One local Ray for the module, started here (one an earlier test left in this process is shut
    down first: the module's Ray pushes metrics every METRICS_PUSH_S) and shut down here."""
    import os

    import ray

    from search.tune.tuner import LOCAL_RAY_CONFIG

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,  # never a `ray start` cluster
             _system_config={**LOCAL_RAY_CONFIG, "metrics_report_interval_ms": int(METRICS_PUSH_S * 1000)})
    yield
    ray.shutdown()


def standin_search(tmp_path, monkeypatch, capsys=None, trial=None, export=True, **search):
    """A search with pairtune's machinery over the stand-in; returns (ResultGrid, run directory, the
    searcher make_tuner built, the printed output of the CLI's end of a search and its exit code).
    With trial={"votes": validation_votes()}, the run keeps those validation votes, as a real search's
    does (search/tune/tuner.py's write_run_files), and each trial the scores of its best validation."""
    from ray import tune

    from search.cli.searching import _finish
    from search.tune import tuner

    raw = {
        "data": {"pairs": "demo"},
        "model": {"backbone": "minilm"},
        "train": {"epochs": EPOCHS},
        "search": {"name": "m", "storage_path": str(tmp_path / "runs"), "max_concurrent_trials": 1, "seed": 0,
                   "grace_period": 1, "reduction_factor": 2, "baseline": False, "space": SPACE, **search},
    }
    cfg = tuner.fresh_run(parse_config(raw, "standin.yaml"))
    built = []
    real_searcher = tuner.make_searcher
    monkeypatch.setattr(tuner, "make_searcher", lambda c, **kw: built.append(real_searcher(c, **kw)) or built[-1])
    monkeypatch.setattr(tuner, "make_trainable",
                        lambda c, prepared: tune.with_parameters(analytic_trial, report_at=REPORT_AT, **(trial or {})))
    run = run_dir(cfg)
    if trial and "votes" in trial:
        from search.runs.layout import write_validation

        write_validation(run, trial["votes"]["less"], trial["votes"]["more"], trial["votes"]["groups"])
    grid = tuner.fit_and_sync(tuner.make_tuner(cfg, None), run)
    if not export:
        return grid, run, built[0], "", None, cfg
    if capsys is not None:
        capsys.readouterr()
    code = _finish(grid, run)
    printed = capsys.readouterr().out if capsys is not None else ""
    return grid, run, built[0], printed, code, cfg


def results(run, trial_id) -> list[dict]:
    return [json.loads(line) for line in (run / trial_id / "result.json").read_text().splitlines() if line.strip()]


def summary(run) -> dict:
    return json.loads((run / "export" / "summary.json").read_text())


def leaderboard(run):
    return read_leaderboard(run / "export" / "leaderboard.csv")


# --- budgets: each ends the search and says so --------------------------------------------------


def test_num_samples_ends_the_search_when_no_budget_does(tmp_path, monkeypatch, capsys):
    grid, run, _, printed, code, _ = standin_search(tmp_path, monkeypatch, capsys, num_samples=3)
    assert code == 0 and len(grid) == 3 and not any(r.error for r in grid)
    assert not (run / END_FILE).exists() and ended_by(run) == {"ended_by": None}  # no budget ended it
    assert summary(run)["ended_by"] == "num_samples"  # every trial ran
    assert "search ended: all num_samples trials ran" in printed


def test_target_ends_the_search(tmp_path, monkeypatch, capsys):
    grid, run, _, printed, code, _ = standin_search(tmp_path, monkeypatch, capsys, num_samples=20, target=0.7,
                                                    points_to_evaluate=[GOOD])
    first = next(r for r in grid if r.config["train.lr"] == pytest.approx(GOOD["train.lr"]))
    tid = first.metrics["trial_id"]
    end = ended_by(run)
    assert (end["ended_by"], end["target"], end["trial_id"]) == ("target", 0.7, tid)
    assert end["value"] == pytest.approx(results(run, tid)[0][AGREEMENT]) and end["value"] >= 0.7
    assert code == 0 and len(grid) < 20  # GOOD's first validation reached the target
    s = summary(run)
    assert s["ended_by"] == "target" and s["value"] >= 0.7
    board = leaderboard(run)
    assert len(board) < 20
    assert board.loc[board.trial_id == s["trial_id"], "outcome"].item() == "stopped_by_search_end"
    assert f"search ended: target 0.7 reached by trial {tid}" in printed


def test_epoch_budget_ends_the_search(tmp_path, monkeypatch, capsys):
    grid, run, _, printed, code, _ = standin_search(tmp_path, monkeypatch, capsys, num_samples=20, epoch_budget=6,
                                                    scheduler="fifo")
    end = ended_by(run)
    # One trial at a time, each validating once per epoch: the budget is met exactly at 6 epochs.
    assert (end["ended_by"], end["epoch_budget"], end["epochs_total"]) == ("epoch_budget", 6, 6.0)
    assert code == 0 and len(grid) == 2
    trained = sum(max(r[EPOCH] for r in results(run, t.metrics["trial_id"])) for t in grid)
    assert trained == 6.0
    assert summary(run)["ended_by"] == "epoch_budget"
    assert "search ended: epoch budget of 6.0 epochs reached" in printed


def test_time_budget_ends_the_search(tmp_path, monkeypatch):
    from search.cli.reading import _ended_line

    # No export here: on a loaded machine no trial may have reported within the 2 s.
    grid, run, *_ = standin_search(tmp_path, monkeypatch, trial={"sleep_s": 0.3}, num_samples=50, time_budget_s=2,
                                   scheduler="fifo", export=False)
    end = ended_by(run)
    assert (end["ended_by"], end["time_budget_s"]) == ("time_budget", 2) and end["elapsed_s"] >= 2
    assert len(grid) < 50
    assert _ended_line(end) == "search ended: time budget of 2.0 s reached"


# --- what TPE is told of each trial's outcome ----------------------------------------------------

_outcome_runs: dict = {}


@pytest.fixture
def outcome_run(tmp_path_factory, monkeypatch):
    """Per search.stopped_trials, one search of three trials one at a time, in this order: FAILING
    errors after its first validation; GOOD runs to its last epoch; SLOW is stopped by ASHA at its
    first rung (epoch 1, far below the other two there). Returns (run, searcher, {name: trial id}, cfg)."""

    def get(feedback):
        if feedback not in _outcome_runs:
            grid, run, searcher, _, _, cfg = standin_search(
                tmp_path_factory.mktemp(feedback), monkeypatch, trial={"fail_if": FAIL_IF}, num_samples=3,
                max_failures=0, stopped_trials=feedback, points_to_evaluate=[FAILING, GOOD, SLOW])
            ids = {}
            for r in grid:
                name = next(n for n, c in (("FAILING", FAILING), ("GOOD", GOOD), ("SLOW", SLOW))
                            if all(r.config[k] == pytest.approx(v) for k, v in c.items()))
                ids[name] = r.metrics["trial_id"] if r.metrics else r.path.rsplit("/", 1)[-1]
            assert len(ids) == 3, ids
            _outcome_runs[feedback] = (run, searcher, ids, cfg)
        return _outcome_runs[feedback]

    return get


def told(searcher, trial_id):
    """The Optuna trial TPE learns from, for a Tune trial."""
    number = searcher._ot_trials[trial_id].number
    return next(t for t in searcher._ot_study.get_trials(deepcopy=False) if t.number == number)


@pytest.mark.parametrize("feedback", ["pruned", "rung", "stock"])
def test_outcomes_tpe_learns_from_a_real_search(feedback, outcome_run):
    run, searcher, ids, _ = outcome_run(feedback)
    values = {name: [r[AGREEMENT] for r in results(run, tid)] for name, tid in ids.items()}
    assert len(values["FAILING"]) == 1 and len(values["GOOD"]) == EPOCHS and len(values["SLOW"]) == 1
    failing, good, slow = (told(searcher, ids[n]) for n in ("FAILING", "GOOD", "SLOW"))
    assert failing.state == TrialState.FAIL and failing.value is None
    if feedback == "pruned":  # finished: its best value; stopped: PRUNED, with its value at each rung it reached
        assert (good.state, good.value) == (TrialState.COMPLETE, pytest.approx(max(values["GOOD"])))
        assert slow.state == TrialState.PRUNED and slow.intermediate_values == {1000: pytest.approx(values["SLOW"][0])}  # at rung 1: epoch 1.000
    elif feedback == "rung":  # every trial: its value at the first rung
        assert (good.state, good.value) == (TrialState.COMPLETE, pytest.approx(values["GOOD"][0]))
        assert (slow.state, slow.value) == (TrialState.COMPLETE, pytest.approx(values["SLOW"][0]))
    else:  # Ray's: the last value, a stopped trial's early value as if it had finished
        assert (good.state, good.value) == (TrialState.COMPLETE, pytest.approx(values["GOOD"][-1]))
        assert (slow.state, slow.value) == (TrialState.COMPLETE, pytest.approx(values["SLOW"][0]))


def test_asha_records_the_trials_it_stopped(outcome_run):
    run, _, ids, _ = outcome_run("pruned")
    stops = [json.loads(line) for line in (run / STOPS_FILE).read_text().splitlines()]
    # SLOW only: GOOD got ASHA's STOP too, at max_t with its final result, which is no early stop;
    # FAILING errored.
    assert stops == [{"trial_id": ids["SLOW"], EPOCH: 1.0, "by": "asha"}]
    board = leaderboard(run).set_index("trial_id")
    assert board.loc[ids["SLOW"], "outcome"] == "stopped_by_asha"
    assert board.loc[ids["GOOD"], "outcome"] == "finished"
    assert board.loc[ids["FAILING"], "outcome"] == "error" and "StandInError" in board.loc[ids["FAILING"], "error"]


# Two backbones, one four times slower per epoch; the slow one is better at equal epochs (GOOD: 0.76 after
# one epoch against 0.71), the fast one at equal time (after 4 s: 4 epochs, 0.79, against the slow one's 1).
FAST = {**GOOD, "train.lr": 1e-5}
SECONDS_PER_EPOCH = {FAST["train.lr"]: 1.0, GOOD["train.lr"]: 4.0}


@pytest.mark.parametrize("time_attr", ["epoch", "seconds"])
def test_asha_compares_trials_at_equal_epochs_or_at_equal_wall_time(time_attr, tmp_path, monkeypatch):
    """search.time_attr: with epoch, ASHA (grace 1 epoch) lets the slow trial go on, ahead after one
    epoch; with seconds (grace 4 s), it stops it at its first result: the fast trial had 0.79 at 4 s."""
    speed = {"seconds_per_epoch": lambda c: SECONDS_PER_EPOCH[min(SECONDS_PER_EPOCH, key=lambda lr: abs(lr - c["train.lr"]))]}
    grid, run, searcher, _, _, cfg = standin_search(
        tmp_path, monkeypatch, trial=speed, num_samples=2, time_attr=time_attr, grace_period=1 if time_attr == "epoch" else 4,
        points_to_evaluate=[FAST, GOOD])
    ids = {("FAST" if r.config["train.lr"] == pytest.approx(FAST["train.lr"]) else "SLOW"): r.metrics["trial_id"] for r in grid}
    board = leaderboard(run).set_index("trial_id")
    assert board.loc[ids["FAST"], "outcome"] == "finished"
    slow = results(run, ids["SLOW"])
    if time_attr == "epoch":
        assert board.loc[ids["SLOW"], "outcome"] == "finished" and not (run / STOPS_FILE).exists()
    else:
        assert board.loc[ids["SLOW"], "outcome"] == "stopped_by_asha" and len(slow) == 1
        assert [json.loads(x) for x in (run / STOPS_FILE).read_text().splitlines()] == [
            {"trial_id": ids["SLOW"], EPOCH: 1.0, "by": "asha"}]
        # TPE hears of it at the rung, in thousandths of a second: the value ASHA judged at 4 s.
        assert told(searcher, ids["SLOW"]).intermediate_values == {4000: pytest.approx(slow[0][AGREEMENT])}
    # What a resumed or extended search replays into ASHA's rungs, in the same unit.
    from search.tune.tuner import rung_points

    unit = 4.0 if time_attr == "seconds" else 1.0
    assert [t for t, _ in rung_points(run, cfg)[ids["SLOW"]]] == [unit * (i + 1) for i in range(len(slow))]


def test_searcher_state_in_the_run_restores_what_tpe_learnt(outcome_run):
    """`pairtune resume` (Tuner.restore) rebuilds the searcher from its state saved in the run
    directory: the same Optuna history and the same bookkeeping of rungs and best values, so it
    suggests what the searcher would have suggested next."""
    from search.tune.searcher import make_searcher

    run, searcher, ids, cfg = outcome_run("pruned")
    restored = make_searcher(cfg)
    restored.restore_from_dir(str(run))

    def history(s):
        return [(t.number, t.state, t.value, t.intermediate_values, t.params) for t in s._ot_study.get_trials()]

    assert history(restored) == history(searcher) and len(history(restored)) == 3
    for attr in ("_feedback", "_time_attr", "_milestones", "_best_value", "_reported", "_first_rung_value",
                 "_completed_trials"):
        assert getattr(restored, attr) == getattr(searcher, attr), attr
    assert restored._feedback == "pruned" and restored._milestones == [1.0, 2.0, 4.0]
    assert set(restored._best_value) == set(ids.values())
    assert restored.suggest("next") == searcher.suggest("next")


# --- every trial's interval, and the trials tied with the best -----------------------------------


def test_intervals_in_export_status_and_report(tmp_path, monkeypatch, capsys):
    """Trials that keep their best validation's scores: the leaderboard, `status`, summary.json and the
    report give every trial its 95% interval and its paired comparison with the best, and name the
    trials tied with it; the intervals come from the kept scores alone."""
    from model.intervals import agreement, bootstrap_agreement
    from search.runs.layout import best_scores
    from search.runs.report import report_run
    from search.runs.status import snapshot

    votes = validation_votes()
    near_good = {**GOOD, "train.margin": 0.36}  # all but the same config: tied with GOOD
    _, run, _, printed, code, _ = standin_search(
        tmp_path, monkeypatch, capsys, trial={"votes": votes}, num_samples=5, scheduler="fifo",
        points_to_evaluate=[GOOD, SLOW, near_good])
    assert code == 0
    board = leaderboard(run)
    assert {"ci95_low", "ci95_high", "p_ge_best", "tied_with_best"} <= set(board.columns)
    kept = {t: best_scores(run / t) for t in board.trial_id}
    assert all(s is not None and len(s) == 200 for s in kept.values())
    for row in board.itertuples():  # the kept scores are the best validation's: the same agreement
        assert agreement(kept[row.trial_id], votes["less"], votes["more"]) == pytest.approx(row.best_agreement, abs=1e-12)
        assert row.ci95_low <= row.best_agreement <= row.ci95_high
    best = board.iloc[0]
    assert best.p_ge_best == 1.0 and best.tied_with_best
    # The same numbers as the bootstrap over the kept scores, seeded.
    iv = bootstrap_agreement(np.stack([kept[t] for t in board.trial_id]), votes["less"], votes["more"], votes["groups"], best=0)
    assert board.ci95_low.tolist() == pytest.approx(iv.low.tolist()) and board.p_ge_best.tolist() == pytest.approx(iv.p_ge_best.tolist())
    tied = sorted(board.trial_id[board.tied_with_best & (board.index > 0)])
    slow_id = board.trial_id[np.isclose(board["param:train.lr"], SLOW["train.lr"])].item()
    assert slow_id not in tied and board.set_index("trial_id").loc[slow_id, "p_ge_best"] < 0.025
    assert tied, board[["trial_id", "best_agreement", "p_ge_best"]]  # near_good, at least

    s = summary(run)["intervals"]
    assert (s["best_trial"], sorted(s["tied_with_best"]), s["resampled"], s["units"]) == (best.trial_id, tied, "group", 150)
    assert s["best_ci95"] == pytest.approx([best.ci95_low, best.ci95_high])
    n = len(tied)
    tied_text = f"{n} trial{'s are' if n != 1 else ' is'} tied with the best ({best.trial_id}) at 95%"
    assert f"({s['level']:.0%} interval {best.ci95_low:.4f}-{best.ci95_high:.4f}, resampling 150 annotation groups" in printed
    assert tied_text in printed, printed

    status_board, line = snapshot(run)
    assert tied_text in line and f"95% interval {best.ci95_low:.4f}-{best.ci95_high:.4f}" in line
    assert status_board.tied_with_best.tolist() == board.tied_with_best.tolist()

    page = report_run(run, tmp_path / "report").index.read_text()
    assert tied_text in page
    assert all(f"{t} \u2248" in page for t in tied) and f"{slow_id} \u2248" not in page


def test_a_warm_started_search_runs_the_earlier_best_first_and_tpe_knows_the_earlier_trials(outcome_run, tmp_path,
                                                                                            monkeypatch):
    """search.warm_start on an earlier real search (the "pruned" outcome run: GOOD finished, SLOW stopped,
    FAILING failed): only GOOD completed, so it seeds the new study and runs first."""
    import optuna

    from search.runs import study

    earlier, _, ids, _ = outcome_run("pruned")
    grid, run, searcher, _, _, _ = standin_search(tmp_path, monkeypatch, export=False, num_samples=2, name="warm",
                                                  warm_start=str(earlier))
    first = min(grid, key=lambda r: results(run, r.metrics["trial_id"])[0]["timestamp"])
    assert all(first.config[k] == pytest.approx(v) for k, v in GOOD.items())
    trials = optuna.load_study(study_name="warm", storage=study.journal_storage(run / study.STUDY_FILE)).get_trials()
    seeded = [t for t in trials if "warm_start_from" in t.user_attrs]
    assert len(seeded) == 1 and seeded[0].value == pytest.approx(max(r[AGREEMENT] for r in results(earlier, ids["GOOD"])))
    assert sorted(t.user_attrs.get(study.TUNE_TRIAL_ID) for t in trials if t not in seeded) == sorted(
        r.metrics["trial_id"] for r in grid)


# --- each trial's value as Ray metrics, scraped from the node while the search runs --------------


def test_each_trials_value_best_and_epochs_are_ray_metrics_during_the_search(tmp_path, monkeypatch):
    """search/tune/metrics.py: the gauges on the node's metrics export port (Prometheus format), read
    over loopback while the search runs, as Prometheus would; then checked against what the trials reported."""
    import re
    import threading
    import time
    import urllib.request

    import ray

    port = next(n["MetricsExportPort"] for n in ray.nodes() if n["Alive"])
    scraped, done = [], threading.Event()

    def scrape():
        while not done.is_set():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    scraped.append(r.read().decode())
            except OSError:
                pass
            done.wait(METRICS_PUSH_S / 4)

    thread = threading.Thread(target=scrape, daemon=True)
    thread.start()
    try:  # two trials of four reports, 1.5 pushes apart: each value is on the port for a scrape or more
        _, run, _, _, _, _ = standin_search(tmp_path, monkeypatch, trial={"sleep_s": 1.5 * METRICS_PUSH_S}, export=False, num_samples=2,
                                            scheduler="fifo", name="metrics")
    finally:
        done.set()
        thread.join()
    pattern = re.compile(r'^ray_(pairtune_trial_\w+)\{[^}]*search="metrics"[^}]*trial="(\w+)"[^}]*\} (\S+)$', re.M)
    seen = [(name, trial, float(v)) for text in scraped for name, trial, v in pattern.findall(text)]
    assert {name for name, _, _ in seen} == {"pairtune_trial_value", "pairtune_trial_best", "pairtune_trial_epochs"}
    reported = {t.name: results(run, t.name) for t in run.iterdir() if (t / "result.json").exists()}
    for name, trial, value in seen:
        values = [r[AGREEMENT] for r in reported[trial]]
        if name == "pairtune_trial_value":
            assert value in values
        elif name == "pairtune_trial_best":
            assert value in [max(values[: i + 1]) for i in range(len(values))]  # a best so far
        else:
            assert value in [r[EPOCH] for r in reported[trial]]
