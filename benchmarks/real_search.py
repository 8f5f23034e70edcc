"""A small real search on Ruddit votes: pairtune's default against random search + FIFO, same compute.

    python benchmarks/real_search.py [--seeds 0,1] [--epoch-budget 24] [--out ~/pairtune_results/real-search]

Both searches run through the CLI (`pairtune search`) on fold 0 of ../shared/data/ruddit_pairs.csv with
the config in benchmarks/real_search.yaml (a tiny BERT built from a config, random weights, MiniLM's
tokenizer: CPU-cheap, so each search is a few minutes) and end when their trials together have trained
--epoch-budget epochs (search.epoch_budget). Compared: best validation agreement, trials run, and the
share of search wall time spent outside training and validation:

    outside = 1 - sum over trials of (time in the trial - start-up - checkpointing and reporting)
                  / (wall time from the first trial's start to the last result x max_concurrent_trials)

so it counts Ray's scheduling, actor start, model loading, checkpoint writes and idle trial slots.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CONFIG = ROOT / "benchmarks" / "real_search.yaml"

STRATEGIES = {
    "pairtune default (TPE + ASHA)": [],
    "random + FIFO": ["search.searcher=random", "search.scheduler=fifo"],
}


def overhead(run: Path, slots: int) -> dict:
    from ray.tune import ExperimentAnalysis

    analysis = ExperimentAnalysis(str(run))
    starts, ends, inside = [], [], 0.0
    for frame in analysis.trial_dataframes.values():
        if not len(frame):
            continue
        first, last = frame.iloc[0], frame.iloc[-1]
        starts.append(first["timestamp"] - first["time_total_s"])
        ends.append(last["timestamp"])
        inside += last["time/train_s"] + last["time/val_s"]
    wall = max(ends) - min(starts)
    return {"wall_s": wall, "train_val_s": inside, "outside_share": 1 - inside / (wall * slots)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--epoch-budget", type=float, default=24)
    ap.add_argument("--out", default=str(Path("~/pairtune_results/real-search").expanduser()))
    ap.add_argument("--measure", default=None, metavar="RUN", help="only print the overhead of an existing run")
    args = ap.parse_args()
    if args.measure:
        from search.runs.layout import load_run_config

        slots = load_run_config(args.measure).search.max_concurrent_trials
        print(json.dumps(overhead(Path(args.measure), slots)))
        return

    sys.path.insert(0, str(ROOT / "tests"))
    from tiny import make_tiny_backbone

    from search.runs.layout import load_run_config

    backbone = make_tiny_backbone(Path(args.out) / "tiny-bert")
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for label, sets in STRATEGIES.items():
            name = f"{'default' if not sets else 'random-fifo'}-seed{seed}"
            cmd = [sys.executable, "-m", "search.cli", "search", str(CONFIG),
                   "--set", f"model.backbone={backbone}", "--set", f"search.storage_path={args.out}",
                   "--set", f"search.name={name}", "--set", f"search.seed={seed}",
                   "--set", f"search.epoch_budget={args.epoch_budget}", *[x for s in sets for x in ("--set", s)]]
            started = time.perf_counter()
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
            seconds = time.perf_counter() - started
            if out.returncode != 0:
                sys.exit(f"{label} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
            run = Path(args.out) / name
            summary = json.loads((run / "export" / "summary.json").read_text())
            board = pd.read_csv(run / "export" / "leaderboard.csv", dtype={"trial_id": str})  # ids like 1e616315 stay text
            slots = load_run_config(run).search.max_concurrent_trials
            row = {"strategy": label, "seed": seed, "best_agreement": summary["best_agreement"],
                   "trials": summary["trials"], "epochs_trained": board["epochs_run"].sum(),
                   "ended_by": summary["ended_by"], "command_s": seconds, **overhead(run, slots)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    table = pd.DataFrame(rows)
    print(f"\n# real search, {time.strftime('%Y-%m-%d')}, epoch budget {args.epoch_budget}")
    print(table.to_string(index=False, float_format=lambda x: f"{x:.4f}"))


if __name__ == "__main__":
    main()
