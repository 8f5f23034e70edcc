"""Failing trials are contained: a diverging trial (loss NaN) and a trial that raises (a broken backbone)
both end as errors with their reason in the leaderboard and the summary; the other trials and the
search go on. Both are points to evaluate of conftest's small_search, the search the whole run shares."""

import pytest
import yaml
from conftest import (
    SHARED_FIRST_LR,
    SHARED_NAN_LR,
    SHARED_SEED,
    SHARED_TRIALS,
    shared_search_config,
)
from runfiles import read_leaderboard


def test_the_shared_search_samples_only_the_working_backbone(tmp_path, tiny_backbone, ruddit_pairs):
    """The shared search's seeded TPE draws its sampled trials from its random start-up, so the broken
    backbone runs exactly once, as its point. If Optuna ever draws differently, this says so (and which
    seed to look for) before the shared search's counts do."""
    from conftest import broken_backbone

    from search.config.parse import parse_config
    from search.tune.searcher import make_searcher

    broken = broken_backbone(tiny_backbone, tmp_path / "broken-bert")
    raw = yaml.safe_load(yaml.safe_dump(shared_search_config(tmp_path, tiny_backbone, broken, ruddit_pairs)))  # as written
    searcher = make_searcher(parse_config(raw, "search.yaml"))
    drawn = [searcher.suggest(f"t{i}")["model.backbone"] for i in range(SHARED_TRIALS)]
    assert drawn.count(broken) == 1, f"seed {SHARED_SEED} now draws the broken backbone {drawn.count(broken) - 1} more time(s)"


@pytest.mark.slow
def test_nan_and_raising_trials_do_not_take_the_search_down(small_search):
    out, backbone, broken = small_search.out, small_search.backbone, small_search.broken
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert f"search finished: {SHARED_TRIALS} trials, 2 errored" in out.stdout
    board = read_leaderboard(small_search.run / "export" / "leaderboard.csv").set_index(["param:train.lr", "param:model.backbone"])
    good, nan, raised = board.loc[(SHARED_FIRST_LR, backbone)], board.loc[(SHARED_NAN_LR, backbone)], board.loc[(SHARED_FIRST_LR, broken)]
    assert good.outcome == "finished" and good.best_agreement > 0
    assert nan.outcome == "error" and "training loss became nan" in nan.error
    assert raised.outcome == "error" and "safetensors" in raised.error.lower()
    assert "training loss became nan" in out.stdout  # the summary says why
