"""Search efficiency: how good a config each search strategy finds for a given compute budget.

    python benchmarks/search_efficiency.py [--seeds 20] [--first-seed 0] [--budget-trials 16] [--strategies a,b,c,d,e]

Runs pairtune's real search machinery (Ray Tune's Tuner, pairtune's searcher and ASHA scheduler,
the SearchBudget stopper, tune.report) on a cheap stand-in trainable: an analytic learning curve
that behaves like fine-tuning a ranker (`curve` in tests/standin.py). Every strategy gets the same total compute,
the sum of epochs trained over all trials (budget = --budget-trials full trials of EPOCHS epochs),
and the same objective (noise seeded per seed); only the search differs.

Strategies:
  a  random search, every trial to the end (FIFO)      num_samples = budget-trials
  b  random search + ASHA (pairtune's ASHA settings)
  c  pairtune's TPE without early stopping (FIFO)      num_samples = budget-trials
  d  Ray's stock OptunaSearch (default TPESampler, stopped trials told as COMPLETE) + ASHA (grace 1,
     reduction factor 2, pinned). Optuna 5's default TPESampler is multivariate with the constant
     liar on and 10 start-up trials, so d differs from e only in start-up trials (10 vs 4) and feedback.
  e  pairtune's default: TPE (multivariate, 4 start-up trials) + ASHA, stopped trials told as PRUNED
     per rung
  f  as e, but every trial told COMPLETE with its first-rung value (stopped_trials: rung)
  g  as e, but stopped trials told as Ray does (stopped_trials: stock): isolates the bias fix
  h  as e, without TPE's constant liar (Optuna 5 turns it on by default: running trials count as bad)
  --define KEY=JSON adds a strategy: search settings over pairtune's defaults, with "tpe" for
  further TPESampler options (how the 2026-11-21 search for a better default was run).

Scoring: at any moment the search's answer is the trial with the best validation value reported so
far (what `pairtune export` picks). Its *true* value is the noise-free curve's best over EPOCHS
epochs for that config: what a user gets by training it fully with checkpoint-on-best. Reported:
the median [25th-75th percentile] true value of the answer at 25%, 50% and 100% of the budget, and
the compute (share of the budget) each strategy needs before its answer is at least as good as
strategy a's answer at 100%, per seed (median; "never" counts as infinite).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
# The stand-in trainable and its learning curve live in tests/standin.py (the search-machinery tests use it too).
from standin import (
    EPOCHS,
    METRIC,
    SPACE,
    TIME_ATTR,
    analytic_trial,
    curve_params,
    true_value,
)


def base_config(storage: str, name: str, seed: int, budget_epochs: float, **search):
    from search.config.parse import parse_config

    raw = {
        "data": {"pairs": "demo"},
        "model": {"backbone": "minilm"},
        "train": {"epochs": EPOCHS},
        "search": {
            "name": name, "storage_path": storage, "seed": seed, "num_samples": 1000,
            "max_concurrent_trials": 4, "epoch_budget": budget_epochs, "space": SPACE, **search,
        },
    }
    return parse_config(raw, "<benchmark>")


STRATEGIES = {
    "a": ("random, full trials", {"searcher": "random", "scheduler": "fifo"}),
    "b": ("random + ASHA", {"searcher": "random", "scheduler": "asha"}),
    "c": ("TPE, full trials", {"searcher": "optuna", "scheduler": "fifo"}),
    # d's ASHA is pinned to the settings every recorded run used (grace 1, reduction factor 2).
    "d": ("Ray stock OptunaSearch + ASHA", {"searcher": "optuna", "scheduler": "asha", "grace_period": 1.0,
                                            "reduction_factor": 2.0}),
    "e": ("pairtune default (TPE + ASHA, pruned)", {}),
    "f": ("TPE + ASHA, first-rung values", {"stopped_trials": "rung"}),
    "g": ("TPE + ASHA, stock feedback", {"stopped_trials": "stock"}),
    "h": ("as e, TPE without constant liar", {"tpe": {"constant_liar": False}}),
}


def run_strategy(key: str, seed: int, budget_trials: int, storage: str) -> dict:
    import optuna
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    from model.metrics import AGREEMENT, METRIC_MODES
    from search.config.space import searched_dimensions
    from search.runs.layout import EPOCH, run_dir
    from search.tune.budget import make_stopper
    from search.tune.scheduler import make_scheduler
    from search.tune.searcher import make_searcher

    budget = float(budget_trials * EPOCHS)
    search = dict(STRATEGIES[key][1])
    tpe = search.pop("tpe", {})  # TPESampler options beyond pairtune's config (exploration only)
    cfg = base_config(storage, f"{key}-{seed}", seed, budget, **search)
    run_dir(cfg).mkdir(parents=True, exist_ok=True)
    if key == "d":
        dims = searched_dimensions(cfg)
        searcher = OptunaSearch(space={d.key: d.to_optuna() for d in dims}, metric=AGREEMENT, mode=METRIC_MODES[AGREEMENT],
                                sampler=optuna.samplers.TPESampler(seed=seed))
    else:
        searcher = make_searcher(cfg, **tpe)
    events: list[tuple[str, float, float]] = []
    configs: dict[str, dict] = {}

    class Record(tune.Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            configs[trial.trial_id] = dict(trial.config)
            events.append((trial.trial_id, float(result[EPOCH]), float(result[AGREEMENT])))

    num_samples = budget_trials if cfg.search.scheduler == "fifo" else 1000
    started = time.perf_counter()
    tuner = tune.Tuner(
        tune.with_parameters(analytic_trial, noise_seed=seed),
        tune_config=tune.TuneConfig(
            metric=AGREEMENT, mode=METRIC_MODES[AGREEMENT], search_alg=searcher, scheduler=make_scheduler(cfg),
            num_samples=num_samples, max_concurrent_trials=cfg.search.max_concurrent_trials,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=cfg.search.name, storage_path=str(run_dir(cfg).parent), stop=make_stopper(cfg), verbose=0, callbacks=[Record()],
            failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
            checkpoint_config=tune.CheckpointConfig(checkpoint_frequency=0),
        ),
    )
    grid = tuner.fit()
    wall = time.perf_counter() - started

    # Replay the results in the order the driver saw them: compute used, and the search's answer.
    epochs, best_obs, answer = {}, {}, None
    trace = []  # (compute, true value of the answer)
    for tid, epoch, value in events:
        epochs[tid] = max(epochs.get(tid, 0.0), epoch)
        if value > best_obs.get(tid, -1.0):
            best_obs[tid] = value
        if answer is None or best_obs[tid] > best_obs[answer]:
            answer = tid
        trace.append((sum(epochs.values()), true_value(configs[answer])))
    return {"trace": trace, "trials": len(grid), "results": len(events), "wall_s": wall,
            "errors": sum(1 for r in grid if r.error),
            "diverged": sum(math.isfinite(curve_params(c)["diverges_at"]) for c in configs.values()), "compute": trace[-1][0] if trace else 0.0,
            "budget": budget}


def value_at(trace, compute: float) -> float:
    best = float("nan")
    for c, v in trace:
        if c > compute * (1 + 1e-9):
            break
        best = v
    return best


def compute_to_reach(trace, target: float) -> float:
    for c, v in trace:
        if v >= target - 1e-12:
            return c
    return math.inf


def quantiles(xs):
    xs = sorted(x for x in xs if not math.isnan(x))
    if not xs:
        return float("nan"), float("nan"), float("nan")
    q = np.quantile(xs, [0.25, 0.5, 0.75])
    return float(q[1]), float(q[0]), float(q[2])


def run_all(keys, seeds, args, runs) -> None:
    import ray

    from model.metrics import AGREEMENT
    from search.runs.layout import EPOCH

    assert (METRIC, TIME_ATTR) == (AGREEMENT, EPOCH)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    logging.getLogger("ray.tune").setLevel(logging.ERROR)
    # Ray starts workers 15 nice levels below the driver; the benchmark measures the search, not the OS.
    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
             _system_config={"worker_niceness": 0})
    with tempfile.TemporaryDirectory() as storage:
        for seed in seeds:
            for k in keys:
                r = {"strategy": k, "seed": seed, **run_strategy(k, seed, args.budget_trials, storage)}
                runs[k].append(r)
                print(f"seed {seed} {k}: {r['trials']} trials ({r['diverged']} diverged, {r['errors']} errors), {r['results']} results "
                      f"in {r['wall_s']:.1f}s, answer's true value {r['trace'][-1][1]:.4f}", flush=True)
                if args.jsonl:
                    with open(args.jsonl, "a") as f:
                        f.write(json.dumps(r) + "\n")
    ray.shutdown()


def paired(runs, base: str, other: str, budget: float) -> str:
    """Seed-by-seed difference of the answer's true value (other - base) at 25/50/100% of the budget:
    mean, wins-losses and Wilcoxon's signed-rank p (ties dropped)."""
    from scipy.stats import wilcoxon

    by_seed = {r["seed"]: r for r in runs[base]}
    out = []
    for frac in (0.25, 0.5, 1.0):
        d = np.array([value_at(r["trace"], frac * budget) - value_at(by_seed[r["seed"]]["trace"], frac * budget)
                      for r in runs[other] if r["seed"] in by_seed])
        nonzero = d[np.abs(d) > 1e-9]
        p = wilcoxon(nonzero).pvalue if len(nonzero) > 5 else float("nan")
        out.append(f"{d.mean():+.4f} ({(d > 1e-9).sum()}-{(d < -1e-9).sum()}, p={p:.3f})")
    return f"| {other} - {base} | " + " | ".join(out) + " |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--budget-trials", type=int, default=16, help="budget = this many full trials' epochs")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--jsonl", default=None, help="append every run here as it ends (traces included)")
    ap.add_argument("--from-jsonl", default=None, help="only print the table for the runs in these files (comma-separated)")
    ap.add_argument("--paired", default="a,d", help="also compare every strategy with these, seed by seed")
    ap.add_argument("--define", action="append", default=[], metavar="KEY=JSON",
                    help='an extra strategy: search settings over pairtune\'s defaults, "tpe" for TPESampler '
                         'options, e.g. x=\'{"n_startup_trials": 10, "tpe": {"n_ei_candidates": 48}}\'')
    args = ap.parse_args()
    for d in args.define:
        key, _, spec = d.partition("=")
        STRATEGIES[key] = (spec, json.loads(spec))

    keys = args.strategies.split(",")
    runs: dict[str, list[dict]] = {k: [] for k in keys}
    if args.from_jsonl:
        for line in (ln for f in args.from_jsonl.split(",") for ln in Path(f).read_text().splitlines()):
            r = json.loads(line)
            if r["strategy"] in runs and r["budget"] == args.budget_trials * EPOCHS:
                runs[r["strategy"]].append(r)
        seeds = sorted({r["seed"] for v in runs.values() for r in v})
        keys = [k for k in keys if runs[k]]
    else:
        seeds = list(range(args.first_seed, args.first_seed + args.seeds))
        run_all(keys, seeds, args, runs)
    for k in keys:
        runs[k].sort(key=lambda r: r["seed"])

    budget = args.budget_trials * EPOCHS
    target = {r["seed"]: value_at(r["trace"], budget) for r in runs["a"]} if "a" in runs else None
    print(f"\n# search efficiency, {len(seeds)} seeds, budget {budget} epochs ({args.budget_trials} full trials "
          f"of {EPOCHS}); {time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores")
    print("| strategy | true value at 25% | at 50% | at 100% | compute to reach a's 100% (median) | "
          "reached | trials (median) | results/s |")
    print("|---|---|---|---|---|---|---|---|")
    for k in keys:
        cells = []
        for frac in (0.25, 0.5, 1.0):
            m, lo, hi = quantiles([value_at(r["trace"], frac * budget) for r in runs[k]])
            cells.append(f"{m:.4f} [{lo:.4f}-{hi:.4f}]")
        if target:
            need = [compute_to_reach(r["trace"], target[r["seed"]]) / budget for r in runs[k] if r["seed"] in target]
            reached = sum(math.isfinite(x) for x in need)
            med = statistics.median(need) if need else math.inf
            need_cell = f"{med:.0%}" if math.isfinite(med) else "never (median)"
        else:
            need_cell, reached = "-", 0
        rate = sum(r["results"] for r in runs[k]) / sum(r["wall_s"] for r in runs[k])
        trials = statistics.median(r["trials"] for r in runs[k])
        print(f"| {k}: {STRATEGIES[k][0]} | {' | '.join(cells)} | {need_cell} | {reached}/{len(seeds)} | "
              f"{trials:g} | {rate:.0f} |")
    for base in (b for b in args.paired.split(",") if b in runs):
        print(f"\nseed by seed against {base}: mean difference of the answer's true value (wins-losses, p)")
        print("| strategies | at 25% | at 50% | at 100% |\n|---|---|---|---|")
        for k in keys:
            if k != base:
                print(paired(runs, base, k, budget))


if __name__ == "__main__":
    main()
