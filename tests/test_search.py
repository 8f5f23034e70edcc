"""A real search through the CLI: local Ray, OptunaSearch + ASHA, tiny BERT on real Ruddit votes;
then export -> train round trip and a reload of the best checkpoint. The search is conftest's
small_search, shared by the whole test run."""

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import SHARED_DROPOUT, SHARED_FIRST_LR, SHARED_TRIALS
from runfiles import read_leaderboard

from data.loaders import text_loader
from model.checkpoint import load_checkpoint
from model.losses import pairwise_agreement
from model.intervals import agreement
from model.metrics import AGREEMENT, VAL_LOSS
from search.runs.layout import VAL_SCORES, read_validation
from search.config.load import load_config
from search.tune.prepare import load_split

pytestmark = pytest.mark.slow


def results(trial_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines() if line.strip()]


def cli(*args, timeout=900):
    return subprocess.run([sys.executable, "-m", "search.cli", *args], check=False, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def search_run(small_search):
    """conftest's shared search (TPE + ASHA, model.dropout fixed, a first point, two failing trials)."""
    return small_search


def test_search_runs_and_ends_with_an_export(search_run):
    out = search_run.out
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    log = out.stdout + out.stderr
    assert "Trial name" in log and "TERMINATED" in log  # Ray Tune's live trial table
    assert "Started a local Ray instance" in log
    assert "127.0.0.1" in log.split("View the dashboard at")[1][:40]  # dashboard on loopback only
    run = search_run.run
    for name in ("export/best.yaml", "export/leaderboard.csv", "export/summary.json", "pairtune_config.yaml", "pairtune_data.json"):
        assert (run / name).exists(), name


def test_leaderboard_has_every_trial_and_asha_stopped_some(search_run):
    epochs = search_run.config["train"]["epochs"]
    board = read_leaderboard(search_run.run / "export" / "leaderboard.csv")
    assert len(board) == SHARED_TRIALS
    assert {"param:train.lr", "param:train.margin", "param:train.loss", "best_agreement", "last_agreement",
            "epochs_run", "outcome"} <= set(board.columns)
    assert (board.outcome == "stopped_by_asha").sum() >= 1
    stopped = board[board.outcome == "stopped_by_asha"]
    assert (stopped.epochs_run < epochs).all()
    assert (board[board.outcome == "finished"].epochs_run == epochs).all()
    scored = board[board.outcome != "error"]  # the two failing trials (test_failing_trials) have no value
    assert len(scored) >= 4 and scored.best_agreement.notna().all()
    assert (scored.best_agreement >= scored.last_agreement - 1e-12).all()
    assert board.best_agreement.iloc[0] == board.best_agreement.max()
    summary = json.loads((search_run.run / "export" / "summary.json").read_text())
    assert summary["ended_by"] == "num_samples"  # no budget set: every trial ran
    # The closing summary reads as a result: the best value on how many votes, how noisy, whom ASHA stopped.
    votes = json.loads((search_run.run / "pairtune_data.json").read_text())["val_votes"]
    assert summary["val_votes"] == votes and summary["val_agreement_noise_95"] == pytest.approx(1.96 * (0.25 / votes) ** 0.5, abs=1e-4)
    out = search_run.out.stdout
    iv = summary["intervals"]  # the bootstrap over the trials' kept scores, Ruddit's tuples resampled whole
    assert iv["best_trial"] == summary["best_trial"] and iv["resampled"] == "group"
    low, high = iv["best_ci95"]
    assert low <= summary["best_agreement"] <= high
    assert (f"best agreement {summary['best_agreement']:.4f} on {votes} validation votes (95% interval {low:.4f}-{high:.4f}, "
            f"resampling {iv['units']} annotation groups") in out, out[-2000:]
    assert f"tied with the best ({summary['best_trial']}) at 95%" in out
    assert (scored.ci95_low <= scored.best_agreement + 1e-6).all() and (scored.best_agreement <= scored.ci95_high + 1e-6).all()
    assert board.p_ge_best.iloc[0] == 1.0 and sorted(board.trial_id[(board.tied_with_best == True) & (board.index > 0)]) == sorted(iv["tied_with_best"])  # noqa: E712
    line = next(x for x in out.splitlines() if x.startswith("ASHA stopped "))
    assert line.startswith(f"ASHA stopped {len(stopped)} of {len(board)} trials early: ")
    assert sorted(line.split(": ", 1)[1].split(", ")) == sorted(stopped.trial_id)
    # The notebook-style first point ran as given.
    assert np.isclose(board["param:train.lr"], SHARED_FIRST_LR).any()
    # Its validations (every 3 of 15 steps) miss ASHA's 0.5-epoch rung: the search said so before it
    # started, and ASHA stopped trials where that warning said it would judge them.
    assert "ASHA's rung at 0.5 epochs comes late for trials with train.batch_size 32: they validate at epochs 0.2, 0.4, " \
           "0.6, 0.8, ... (450 training votes, train.val_every_n_steps 3), so ASHA first judges them at epoch 0.6" \
           in search_run.out.stderr, search_run.out.stderr[-3000:]
    assert (stopped.epochs_run == 0.6).all(), stopped.epochs_run.tolist()


def test_only_the_best_epoch_is_checkpointed(search_run):
    run = search_run.run
    board = read_leaderboard(run / "export" / "leaderboard.csv")
    errored = set(board.trial_id[board.outcome == "error"])
    trial_dirs = [p for p in run.iterdir() if (p / "params.json").exists()]
    assert len(trial_dirs) == SHARED_TRIALS
    for trial_dir in trial_dirs:
        checkpoints = list(trial_dir.glob("checkpoint_*"))
        if trial_dir.name in errored:  # failed before its first validation: nothing to keep
            assert checkpoints == [], trial_dir
            continue
        assert len(checkpoints) == 1, trial_dir
        metrics = json.loads((checkpoints[0] / "metrics.json").read_text())
        assert metrics[AGREEMENT] == max(r[AGREEMENT] for r in results(trial_dir))
        # ... with its score of each validation text: the same agreement on the run's validation votes.
        less, more, groups = read_validation(run)
        scores = np.load(checkpoints[0] / VAL_SCORES)
        assert scores.dtype == np.float32 and len(scores) == max(less.max(), more.max()) + 1 and len(groups) == len(less)
        assert agreement(scores, less, more) == pytest.approx(metrics[AGREEMENT], abs=1e-6)


def test_the_study_in_the_run_holds_every_trial_as_the_leaderboard_does(search_run):
    """The Optuna study persists in the run (optuna-dashboard reads this file): each trial with its Tune
    id, outcome, epochs and kept checkpoint, each validation an intermediate value."""
    import optuna
    from optuna.trial import TrialState

    from search.runs import study

    run = search_run.run
    loaded = optuna.load_study(study_name="shared", storage=study.journal_storage(run / study.STUDY_FILE))
    trials = {t.user_attrs[study.TUNE_TRIAL_ID]: t for t in loaded.get_trials()}
    board = read_leaderboard(run / "export" / "leaderboard.csv").set_index("trial_id")
    assert set(trials) == set(board.index) and len(trials) == SHARED_TRIALS
    state = {"finished": TrialState.COMPLETE, "stopped_by_asha": TrialState.PRUNED, "error": TrialState.FAIL}
    for tid, t in trials.items():
        row = board.loc[tid]
        assert t.state == state[row.outcome], (tid, row.outcome)
        assert t.user_attrs[study.OUTCOME] == {"finished": "finished", "stopped_by_asha": "stopped", "error": "error"}[row.outcome]
        assert t.user_attrs[study.EPOCHS] == pytest.approx(row.epochs_run)
        if row.outcome == "error":
            assert study.CHECKPOINT not in t.user_attrs
            continue
        validations = results(run / tid)
        assert len(t.intermediate_values) == len(validations)  # each validation, none twice
        assert sorted(t.intermediate_values.values()) == pytest.approx(sorted(r[AGREEMENT] for r in validations))
        kept = run / t.user_attrs[study.CHECKPOINT]
        assert [kept] == list((run / tid).glob("checkpoint_*"))  # the one Ray kept
        if t.state == TrialState.COMPLETE:
            assert t.value == pytest.approx(row.best_agreement)


def test_best_checkpoint_reproduces_its_agreement(search_run):
    run = search_run.run
    summary = json.loads((run / "export" / "summary.json").read_text())
    module, config = load_checkpoint(summary["best_checkpoint"])
    cfg = load_config(run / "export" / "best.yaml")
    assert config["model"] == cfg.to_dict()["model"]
    votes, split = load_split(cfg)
    from data import tokenize_texts
    from data.loaders import FoldInputs
    from model.backbone import load_tokenizer

    tokens = tokenize_texts(votes.texts, load_tokenizer(cfg.model.backbone), cfg.data.max_length)
    v = split.val_votes
    data = FoldInputs(tokens, votes.less[:0], votes.more[:0], votes.less[v], votes.more[v])
    texts, less, more = data.val_texts()
    scores = torch.empty(len(texts))
    with torch.no_grad():
        for batch in text_loader(tokens, texts, 64, cfg.data.max_length):
            scores[batch["position"]] = module(batch["input_ids"], batch["attention_mask"])
    got = pairwise_agreement(scores, torch.from_numpy(less), torch.from_numpy(more))
    assert got == pytest.approx(summary["best_agreement"], abs=2 / len(less))


@pytest.mark.parametrize("command", ["export", "report"])
def test_an_out_under_a_file_is_a_clear_error(command, search_run, tmp_path, run_cli):
    """It was a FileExistsError traceback."""
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    out = run_cli(command, str(search_run.run), "--out", str(blocker / "sub"))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert f"pairtune: error: --out {blocker / 'sub'}: cannot create it and write there ({blocker} is a file, not a directory)" in out.stderr


def test_export_then_train_round_trip(search_run, tmp_path, run_cli):
    run = search_run.run
    out = run_cli("export", str(run), "--out", str(tmp_path / "exp"))  # in this process: no Ray, no new Python
    assert out.returncode == 0, out.stderr[-2000:]
    best = tmp_path / "exp" / "best.yaml"
    cfg = load_config(best)
    assert cfg.search.space == {} and cfg.search.points_to_evaluate == []  # every value fixed
    exported = yaml.safe_load(best.read_text())
    board = read_leaderboard(tmp_path / "exp" / "leaderboard.csv")
    assert exported["train"]["lr"] == pytest.approx(board["param:train.lr"].iloc[0])
    assert exported["model"]["dropout"] == SHARED_DROPOUT  # fixed under search.space, so every trial had it
    assert exported["model"]["backbone"] == search_run.backbone  # the best trial's draw: never the broken one
    trained = cli("train", str(best), "--out", str(tmp_path / "model"))
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert (tmp_path / "model" / "model.pt").exists() and (tmp_path / "model" / "config.yaml").exists()
    summary = json.loads((tmp_path / "exp" / "summary.json").read_text())
    assert summary["best_agreement"] == pytest.approx(board.best_agreement.iloc[0], abs=1e-12)
    finished = board.trial_id[board.outcome == "finished"]
    assert len(finished) >= 1, board  # ASHA let at least one trial run the whole schedule
    assert_trains_as_its_trial(trained, summary, results(run / finished.iloc[0]))


def assert_trains_as_its_trial(trained: subprocess.CompletedProcess, summary: dict, schedule: list[dict]) -> None:
    """`pairtune train best.yaml` trains the best trial again: same config, seed, fold and threads
    (search.cpus_per_trial), so it validates exactly as the trial did at every validation the trial ran
    (ASHA may have stopped it early), and then at every one of a whole schedule (`schedule`: the results
    of a trial that finished). Agreement is a count over a few hundred votes, so the 4 decimals train logs
    identify it exactly; train logs epochs to 2 decimals (validations inside epochs are fractions)."""
    trial = results(Path(summary["best_checkpoint"]).parent)
    assert summary["best_agreement"] == max(r[AGREEMENT] for r in trial)
    logged = re.findall(r"fold \d+, epoch ([\d.]+): val/agreement ([\d.]+), val loss ([\d.]+)", trained.stderr)
    retrained = [(float(e), float(a), float(v)) for e, a, v in logged]
    assert [e for e, _, _ in retrained] == [round(r["epoch"], 2) for r in schedule], trained.stderr[-3000:]
    assert len(retrained) >= len(trial), trained.stderr[-3000:]
    assert retrained[: len(trial)] == [(round(r["epoch"], 2), round(r[AGREEMENT], 4), round(r[VAL_LOSS], 4)) for r in trial]
    printed = float(trained.stdout.split("best val/agreement:")[1].split()[0])
    assert printed == max(a for _, a, _ in retrained) >= round(summary["best_agreement"], 4)


def test_a_trial_in_a_reused_process_pays_no_imports_and_trains_as_in_a_fresh_one(search_run):
    """search.reuse_trial_processes (on by default): a trial starts in the process of one that ended,
    which has torch, transformers and Lightning imported already. Nothing of the earlier trial may
    leak into it (seeds, threads, the model, the thread Ray stopped at a rung): it validates exactly as
    its config trained afresh in one process."""
    from model.train import fit, set_threads
    from search.config.parse import with_params
    from search.tune.prepare import prepare_data

    run = search_run.run
    board = read_leaderboard(run / "export" / "leaderboard.csv")
    trials = {t: results(run / t) for t in board.trial_id[board.outcome != "error"]}
    reused = [t for t, rows in trials.items() if rows[0]["process_trial"] >= 2]
    assert reused, {t: (rows[0]["pid"], rows[0]["process_trial"]) for t, rows in trials.items()}
    for t, rows in trials.items():
        first = rows[0]["process_trial"] == 1
        assert (rows[0]["imports_s"] > 0) == first, (t, rows[0]["imports_s"], rows[0]["process_trial"])
    trial = reused[0]
    params = json.loads((run / trial / "params.json").read_text())
    cfg = with_params(load_config(search_run.config_path), params)
    set_threads(cfg.search.cpus_per_trial)
    _, tracker = fit(cfg.model, cfg.train, prepare_data(cfg).fold_inputs(cfg.model.backbone, cfg.data.lowercase),
                     cfg.data.max_length)
    fresh = {round(h.epoch, 4): h for h in tracker.history}
    for r in trials[trial]:
        mine = fresh[round(r["epoch"], 4)]
        assert mine.agreement == pytest.approx(r[AGREEMENT], abs=1e-9) and mine.val_loss == pytest.approx(r[VAL_LOSS], abs=1e-6)


def test_each_trial_records_its_wall_time_in_parts_and_its_cost_beside_the_metric(search_run):
    """Every result carries the trial's wall time so far in parts (start-up with the fresh process's
    imports, training, validation, reporting) and its CPU- and GPU-seconds (its reserved resources times
    that wall time); the leaderboard shows the last ones beside the metric, and `status` prints them."""
    from search.runs.status import render, snapshot

    run = search_run.run
    cpus = search_run.config["search"].get("cpus_per_trial", 1)
    board = read_leaderboard(run / "export" / "leaderboard.csv")
    for t in board.itertuples():
        rows = results(run / t.trial_id)
        if t.outcome == "error":  # failed before any result: nothing to count
            assert not rows and math.isnan(t.wall_s)
            continue
        for r in rows:
            parts = [r[f"time/{k}"] for k in ("startup_s", "train_s", "val_s", "report_s")]
            assert min(parts) >= 0 and r["time/wall_s"] == pytest.approx(sum(parts), abs=2e-3)
            assert r["cost/cpu_s"] == pytest.approx(cpus * r["time/wall_s"], abs=2e-3) and r["cost/gpu_s"] == 0
        assert rows[0]["time/startup_s"] >= rows[0]["imports_s"] + rows[0]["startup_s"] - 2e-3
        walls = [r["time/wall_s"] for r in rows]
        assert walls == sorted(walls) and t.wall_s == walls[-1] and t.cpu_s == rows[-1]["cost/cpu_s"] and t.gpu_s == 0
    header = next(line for line in render(*snapshot(run)).splitlines() if line.lstrip().startswith("trial_id"))
    assert all(c in header.split() for c in ("wall_s", "cpu_s", "gpu_s"))


def test_every_validation_line_reaches_the_output_under_its_own_trials_name(search_run):
    """Each validation prints a line in its trial's process; Ray shows it in the search's output with
    the process's name in front. None is missing (the CLI turns off Ray's log deduplication, which would
    fold them: search/cli/main.py), and a reused process takes its new trial's name
    (search/tune/cluster.announce_name)."""
    out = re.sub(r"\x1b\[[0-9;]*m", "", search_run.out.stdout + search_run.out.stderr)
    lines = re.findall(r"\((\S+) pid=\d+\) pairtune: trial (\S+): epoch ([\d.]+)", out)
    run = search_run.run
    board = read_leaderboard(run / "export" / "leaderboard.csv")
    for trial_id in board.trial_id[board.outcome != "error"]:
        mine = [(prefix, epoch) for prefix, name, epoch in lines if name.startswith(trial_id + "_")]
        assert [f"{r['epoch']:.2f}" for r in results(run / trial_id)] == [epoch for _, epoch in mine], trial_id
        assert {prefix for prefix, _ in mine} == {next(name for _, name, _ in lines if name.startswith(trial_id + "_"))}


def test_ensemble_of_the_best_trials_is_a_fold_ensemble_predict_takes(search_run, tmp_path, run_cli):
    """`pairtune ensemble`: greedy (Caruana) and top-K ensembles chosen from the scores the trials kept,
    written as a fold ensemble of self-contained models; predict on the validation texts reproduces the
    ensemble's reported validation agreement, so the members are the trials' best checkpoints."""
    import pandas as pd

    from search.recipes.predict import rank_average
    from search.runs.layout import best_scored_checkpoint

    run = search_run.run
    out = run_cli("ensemble", str(run), "--out", str(tmp_path / "greedy"))
    assert out.returncode == 0, out.stdout + out.stderr
    e = json.loads((tmp_path / "greedy" / "ensemble.json").read_text())["ensemble"]
    board = read_leaderboard(run / "export" / "leaderboard.csv")
    less, more, _ = read_validation(run)
    members = []
    for k, trial_id in enumerate(e["members"]):
        model = tmp_path / "greedy" / f"fold_{k}"
        assert (model / "model.pt").exists() and (model / "encoder" / "tokenizer.json").exists()  # self-contained
        kept = np.load(best_scored_checkpoint(run / trial_id) / VAL_SCORES)
        members.append(np.load(model / VAL_SCORES))
        assert np.array_equal(members[-1], kept)
    assert e["validation_agreement"] == pytest.approx(agreement(rank_average(members), less, more))
    assert e["best_single"]["trial_id"] == board.trial_id.iloc[0]
    assert e["best_single"]["validation_agreement"] == pytest.approx(board.best_agreement.iloc[0], abs=1e-6)
    assert e["validation_agreement"] >= e["best_single"]["validation_agreement"]  # greedy starts from the best trial
    assert e["ci95"][0] <= e["validation_agreement"] <= e["ci95"][1]
    assert "optimistic" in out.stdout and f"pairtune predict {tmp_path / 'greedy'}" in out.stdout

    # predict takes it unchanged: the rank average of its members, re-scored from their weights.
    cfg = load_config(run / "export" / "best.yaml")
    votes, split = load_split(cfg)
    from data.loaders import positions_among_texts

    v = split.val_votes
    texts, less_v, more_v = positions_among_texts(votes.less[v], votes.more[v])
    assert np.array_equal(less_v, less) and np.array_equal(more_v, more)  # the run kept the same votes
    pd.DataFrame({"comment_id": range(len(texts)), "text": [votes.texts[t] for t in texts]}).to_csv(tmp_path / "val.csv", index=False)
    scored = run_cli("predict", str(tmp_path / "greedy"), str(tmp_path / "val.csv"), "--out", str(tmp_path / "s.csv"), "--no-progress")
    assert scored.returncode == 0, scored.stdout + scored.stderr
    scores = pd.read_csv(tmp_path / "s.csv").score.to_numpy()
    assert agreement(scores, less, more) == pytest.approx(e["validation_agreement"], abs=2 / len(less))

    top = run_cli("ensemble", str(run), "--out", str(tmp_path / "top2"), "--top", "2")
    assert top.returncode == 0, top.stdout + top.stderr
    assert json.loads((tmp_path / "top2" / "ensemble.json").read_text())["ensemble"]["members"] == board.trial_id.iloc[:2].tolist()
    too_many = run_cli("ensemble", str(run), "--out", str(tmp_path / "top99"), "--top", "99")
    assert too_many.returncode == 2 and "--top 99: only" in too_many.stderr and not (tmp_path / "top99").exists()
    (tmp_path / "a-file").write_text("x")  # an --out that cannot be a directory: said before any model is loaded
    blocked = run_cli("ensemble", str(run), "--out", str(tmp_path / "a-file"))
    assert blocked.returncode == 2 and f"--out {tmp_path / 'a-file'}: cannot create it and write there" in blocked.stderr
    assert "Traceback" not in blocked.stderr
