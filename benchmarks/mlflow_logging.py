"""Driver time per result with MLflow tracking on: Ray's MLflowLoggerCallback against pairtune's
(search/tune/tracking.py, mlflow_callback: the same callback, a result logged in one log_batch).

    python benchmarks/mlflow_logging.py [--trials 4] [--results 10] [--reps 3]

Each rep logs the same trials and results (a real trial's result: the numbers a pairtune trial reports
at each validation) into a fresh SQLite store in a temporary directory, as a search with
`search.tracking.mlflow: {}` does in its run directory, first through Ray's callback, then through
pairtune's, then the other way round. It prints milliseconds per result for each and the ratio, and
checks that both stores hold the same metric histories (keys, values and steps).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# One result of a pairtune trial (a tiny-BERT trial of tests/conftest.py's shared search), as Tune hands it to callbacks.
RESULT = {
    "val/agreement": 0.6667, "val/loss": 0.1179, "epoch": 1.0, "step": 15, "best_agreement": 0.6667, "final": True,
    "startup_s": 0.441, "checkpoint_score": 0.6667, "time/startup_s": 6.108, "time/train_s": 0.558, "time/val_s": 0.111,
    "time/report_s": 1.491, "time/wall_s": 8.268, "cost/cpu_s": 8.268, "cost/gpu_s": 0.0,
    "node_id": "095c9a261e72b99af10122bc514ac4ce5b0dae02dfd9e8ba12c6f454", "node_ip": "192.0.2.2", "gpu_ids": "",
    "cuda_visible_devices": "", "device": "cpu", "precision": "32-true", "pid": 21109, "process_trial": 1,
    "imports_s": 5.668, "timestamp": 1796403860, "checkpoint_dir_name": "checkpoint_000004", "should_checkpoint": True,
    "done": False, "trial_id": "4895f5d4", "date": "2026-12-04_17-04-20", "time_this_iter_s": 0.1737,
    "time_total_s": 5.0735, "hostname": "vm", "time_since_restore": 5.0735, "iterations_since_restore": 5,
    "config": {"model.backbone": "tiny-bert", "train.loss": "margin", "train.lr": 0.0059, "train.margin": 0.1412},
}


class Trial:
    """What the callbacks read of a Tune trial."""

    def __init__(self, trial_id: str):
        self.trial_id = trial_id
        self.config = RESULT["config"]

    def __str__(self):
        return f"{self.trial_id}_lr=0.0059"


def log_search(make_callback, directory: Path, trials: int, results: int) -> float:
    """Seconds per result spent in log_trial_result, over `trials` trials of `results` results each."""
    callback = make_callback(f"sqlite:///{directory / 'mlflow.db'}")
    callback.setup()
    spent = 0.0
    for t in range(trials):
        trial = Trial(f"trial{t:03d}")
        callback.log_trial_start(trial)
        for i in range(1, results + 1):
            result = {**RESULT, "training_iteration": i, "val/agreement": 0.5 + 0.01 * i + 0.001 * t, "step": 3 * i}
            start = time.perf_counter()
            callback.log_trial_result(i, trial, result)
            spent += time.perf_counter() - start
        callback.log_trial_end(trial)
    return spent / (trials * results)


def histories(directory: Path) -> dict:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{directory / 'mlflow.db'}")
    out = {}
    for run in client.search_runs([e.experiment_id for e in client.search_experiments()]):
        name = run.data.tags["trial_name"]
        for key in run.data.metrics:
            out[(name, key)] = [(m.step, m.value) for m in sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: m.step)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--results", type=int, default=10, help="results per trial")
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()

    import logging

    from ray.air.integrations.mlflow import MLflowLoggerCallback

    from search.tune.tracking import mlflow_callback

    logging.getLogger("alembic").setLevel(logging.WARNING)
    systems = {
        "ray": lambda uri: MLflowLoggerCallback(tracking_uri=uri, experiment_name="bench", save_artifact=False),
        "pairtune": lambda uri: mlflow_callback(uri, "bench", None),
    }
    times = {name: [] for name in systems}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            order = list(systems) if rep % 2 == 0 else list(reversed(systems))
            for name in order:
                directory = Path(tmp) / f"{name}-{rep}"
                directory.mkdir()
                times[name].append(log_search(systems[name], directory, args.trials, args.results))
        same = histories(Path(tmp) / "ray-0") == histories(Path(tmp) / "pairtune-0")
    ray_ms, ours_ms = (1000 * statistics.median(times[n]) for n in ("ray", "pairtune"))
    print(f"{args.trials} trials x {args.results} results, {args.reps} reps, median ms per result (each rep):")
    for name in systems:
        print(f"  {name:9s} {1000 * statistics.median(times[name]):7.2f}   ({', '.join(f'{1000 * t:.2f}' for t in times[name])})")
    print(f"  ratio pairtune / ray: {ours_ms / ray_ms:.3f}; the same metric histories in both stores: {same}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
