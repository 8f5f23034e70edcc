"""benchmarks/vs_peers.py's arithmetic: the numbers its table is made of (best so far, time to reach a
value, the peer/pairtune ratio) and the one agreement rule it applies to the peers' scores. The three
systems themselves run only in the benchmark (20 minutes each); its table is in benchmarks/README.md."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import benchmark_module

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def vs_peers():
    return benchmark_module("vs_peers")


def events(system, *pairs):
    return [{"system": system, "elapsed_s": t, "trial": i, "agreement": a} for i, (t, a) in enumerate(pairs)]


def test_best_so_far_keeps_only_the_events_that_raised_it_in_time_order(vs_peers):
    got = events("x", (30.0, 0.60), (10.0, 0.55), (50.0, 0.58), (70.0, 0.61), (90.0, 0.61))
    assert vs_peers.best_so_far(got) == [(10.0, 0.55), (30.0, 0.60), (70.0, 0.61)]  # a tie does not count as a rise
    assert vs_peers.time_to_reach(vs_peers.best_so_far(got), 0.58) == 30.0
    assert vs_peers.time_to_reach(vs_peers.best_so_far(got), 0.62) is None
    # A peer's value as its event file keeps it (6 decimals) is reached by the same count of votes.
    assert vs_peers.time_to_reach([(170.3, 2421 / 3441)], float(f"{2421 / 3441:.6f}")) == 170.3
    assert vs_peers.time_to_reach([(170.3, 2420 / 3441)], float(f"{2421 / 3441:.6f}")) is None


def test_each_peer_is_timed_to_its_own_final_best_and_pairtune_to_the_same_value(vs_peers):
    runs = {
        "notebook": events("notebook", (300.0, 0.60), (900.0, 0.66)),
        "ray_guide": events("ray_guide", (200.0, 0.70)),
        "pairtune": events("pairtune", (100.0, 0.62), (150.0, 0.665), (400.0, 0.69)),
        "empty": [],
    }
    rows = {r["peer"]: r for r in vs_peers.compare(runs)}
    assert set(rows) == {"notebook", "ray_guide", "empty"}
    assert rows["notebook"] == {"peer": "notebook", "peer_best": 0.66, "peer_s": 900.0, "pairtune_s": 150.0, "ratio": 6.0}
    # never reached by pairtune: no ratio, and the table says so rather than inventing one
    assert rows["ray_guide"]["pairtune_s"] is None and rows["ray_guide"]["ratio"] is None
    assert rows["empty"]["peer_best"] is None
    table = vs_peers.summary_table(runs, list(rows.values()), 1200.0)
    assert "| notebook | 2 | 2 | 5.0 min | 0.6600 | 15.0 min |" in table  # trials, validations, first, best, when
    assert "| notebook | 0.6600 | 15.0 min | 2.5 min | 6.0x |" in table
    assert "| ray_guide | 0.7000 | 3.3 min | not within 20 min | - |" in table
    assert "| empty | no result in 20 min |" in table
    # every rise of a peer's best so far, timed against pairtune's climb to the same value
    assert [(r["peer"], r["value"], r["ratio"]) for r in vs_peers.step_ratios(runs)] == [
        ("notebook", 0.60, 3.0), ("notebook", 0.66, 6.0), ("ray_guide", 0.70, None)]
    assert "| notebook | 0.6000 | 5.0 min | 1.7 min | 3.0x |" in table


def test_peer_agreement_is_the_projects_rule_ties_are_misses(vs_peers):
    from model.intervals import agreement

    more = np.array([1.0, 0.5, 2.0, 0.0])
    less = np.array([0.0, 0.5, 3.0, -1.0])  # a win, a tie (a miss), a loss, a win
    assert vs_peers.vote_agreement(more, less) == 0.5
    rng = np.random.default_rng(0)
    scores = rng.normal(size=50)
    a, b = rng.integers(0, 50, 200), rng.integers(0, 50, 200)
    assert vs_peers.vote_agreement(scores[b], scores[a]) == agreement(scores, a, b)


def test_the_peers_refuse_a_space_they_cannot_vary_before_anything_runs(vs_peers, tmp_path):
    config = ROOT / "benchmarks" / "ruddit_minilm_30min.yaml"
    cfg = vs_peers.load_config(config, ["search.space.model.pooling={choice: [mean, cls]}"])
    with pytest.raises(SystemExit, match="model.pooling"):
        vs_peers.peer_space(cfg)
    with pytest.raises(SystemExit, match="onecycle"):
        vs_peers.peer_space(vs_peers.load_config(config, ["train.schedule=onecycle"]))
    space = vs_peers.peer_space(vs_peers.load_config(config, []))
    assert sorted(space) == sorted(vs_peers.PEER_KEYS)
    assert vs_peers.hyper(vs_peers.load_config(config, []), {"train.lr": 3e-5})["train.lr"] == 3e-5
