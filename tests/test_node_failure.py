"""A worker node dies mid-trial on a multi-node Ray cluster (several nodes on this machine): the trial
is retried from its checkpoint on another node, the search finishes, no finished result is lost."""

import json
import threading
import time

import pytest
from conftest import assert_continues_from_last_checkpoint

from search.config.parse import parse_config
from search.tune.tuner import run_search

pytestmark = pytest.mark.slow


def results(trial_dir):
    path = trial_dir / "result.json"
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


def test_trial_survives_losing_its_node(tmp_path, tiny_backbone, ruddit_pairs):
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():  # a local Ray an earlier test left in this process: this test joins its own cluster
        ray.shutdown()
    # The head runs no trials, and no dashboard: nothing here looks at one (tests/test_cluster_jobs.py's cluster has it).
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    run = tmp_path / "runs" / "n"
    killed = {}

    def kill_the_node_of_a_running_trial():
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed:
            for trial in run.glob("*/result.json"):
                rows = results(trial.parent)
                if rows and not rows[-1]["final"] and list(trial.parent.glob("checkpoint_*/resume.ckpt")):
                    node = next(w for w in workers if w.node_id == rows[-1]["node_id"])
                    killed.update(trial=trial.parent.name, node=node.node_id, rows=len(rows))
                    cluster.remove_node(node)  # a real node failure: its raylet and workers die
                    return
            time.sleep(0.2)

    try:
        ray.init(address=cluster.address)
        cfg = parse_config({
            "data": {"pairs": str(ruddit_pairs), "max_votes": 900, "max_length": 64},
            "model": {"backbone": tiny_backbone},
            "train": {"epochs": 2, "batch_size": 32, "val_every_n_steps": 5},
            "search": {"name": "n", "storage_path": str(tmp_path / "runs"), "num_samples": 2, "max_concurrent_trials": 1,
                       "scheduler": "fifo", "max_failures": 2, "space": {"train.lr": {"choice": [1e-3, 2e-3]}}},
        }, "mem")
        killer = threading.Thread(target=kill_the_node_of_a_running_trial, daemon=True)
        killer.start()
        grid, _ = run_search(cfg, address=cluster.address)
        killer.join(timeout=5)
    finally:
        ray.shutdown()
        cluster.shutdown()

    assert killed, "no trial was caught running with a checkpoint"
    assert len(grid) == 2 and not [r for r in grid if r.error]
    rows = results(run / killed["trial"])
    # The first try ran on the killed node (including any result in flight when it died); the retry
    # runs on the surviving one.
    moved = next(i for i, r in enumerate(rows) if r["node_id"] != killed["node"])
    before, after = rows[:moved], rows[moved:]
    assert len(before) >= killed["rows"] and {r["node_id"] for r in after} == {w.node_id for w in workers} - {killed["node"]}
    (other,) = [p for p in run.glob("*/result.json") if p.parent.name != killed["trial"]]  # never interrupted
    assert_continues_from_last_checkpoint(before, after, [r["step"] for r in results(other.parent)])
    assert after[-1]["final"] and after[-1]["epoch"] == 2
    from search.runs.export import export_run

    board = export_run(run).leaderboard
    assert len(board) == 2 and set(board.outcome) == {"finished"}
