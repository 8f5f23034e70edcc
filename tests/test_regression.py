"""Regression on phrase-matching data built from several columns (a template), split by group, searched
for Pearson correlation. There is no patent data in ../shared/data: the CSV here is generated, in the
layout of Kaggle's U.S. Patent Phrase to Phrase Matching (id, anchor, target, context, score)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from runfiles import read_leaderboard

from data import DataError
from data.config import DataConfig
from data.scores import read_scored, scored_split

WORDS = ("valve", "rotor", "sensor", "battery", "gear", "signal", "polymer", "coating", "circuit", "lens", "pump", "blade")
CONTEXTS = ("F16", "H01", "G01", "B29", "C08", "H04")


def patent_like_csv(path, n_anchors: int = 24, per_anchor: int = 10, seed: int = 0):
    """Anchor/target phrases; the score grows with the words the target shares with its anchor."""
    rng = np.random.default_rng(seed)
    rows = []
    for a in range(n_anchors):
        anchor = rng.choice(WORDS, size=2, replace=False)
        context = CONTEXTS[a % len(CONTEXTS)]
        for t in range(per_anchor):
            shared = int(rng.integers(0, 3))
            target = list(anchor[:shared]) + list(rng.choice([w for w in WORDS if w not in anchor], size=2 - shared, replace=False))
            rows.append({"id": f"{a}-{t}", "anchor": " ".join(anchor), "target": " ".join(target), "context": context,
                         "score": [0.0, 0.5, 1.0][shared]})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


TEMPLATE = "{context} [SEP] {anchor} [SEP] {target}"


def test_template_builds_the_text_and_group_split_keeps_anchors_together(tmp_path):
    path = patent_like_csv(tmp_path / "patents.csv")
    cfg = DataConfig(pairs=str(path), format="scores", template=TEMPLATE, group_column="anchor", folds=4)
    data = read_scored(cfg)
    frame = pd.read_csv(path)
    first = frame.iloc[0]
    assert f"{first.context} [SEP] {first.anchor} [SEP] {first.target}" in data.texts
    votes, split = scored_split(data, cfg)
    assert split.method == "groups"
    anchor_of = {t: t.split(" [SEP] ")[1] for t in data.texts}
    folds_per_anchor = pd.Series(votes.text_fold).groupby([anchor_of[t] for t in data.texts]).nunique()
    assert (folds_per_anchor == 1).all()
    # No derived pair joins the validation fold to the training folds.
    in_val = votes.text_fold == split.fold
    assert (in_val[votes.less] == in_val[votes.more]).all()


def test_template_naming_a_missing_column_is_a_clear_error(tmp_path):
    path = patent_like_csv(tmp_path / "patents.csv")
    cfg = DataConfig(pairs=str(path), format="scores", template="{context} [SEP] {anchr} [SEP] {target}")
    with pytest.raises(DataError, match=r"patents\.csv: data\.template: column\(s\) \['anchr'\] not in the file"):
        read_scored(cfg)
    cfg = DataConfig(pairs=str(path), format="scores", template=TEMPLATE, group_column="cpc")
    with pytest.raises(DataError, match=r"patents\.csv: missing column 'cpc' \(data\.group_column\)"):
        read_scored(cfg)


def test_pearson_on_pair_votes_is_rejected_before_anything_runs(tmp_path):
    from search.config.parse import ConfigError, parse_config

    with pytest.raises(ConfigError, match="search.metric: val/pearson correlates predicted with true scores"):
        parse_config({"search": {"metric": "val/pearson"}}, "c.yaml")
    assert parse_config({"search": {"metric": "val/loss"}}, "c.yaml").search.mode == "min"  # derived from the metric
    with pytest.raises(ConfigError, match="search.mode: val/loss is better when lower, so mode must be 'min'"):
        parse_config({"search": {"metric": "val/loss", "mode": "max"}}, "c.yaml")


@pytest.mark.slow
def test_search_for_pearson_with_mse_regression(tmp_path, tiny_backbone, shared_local_ray, run_cli):
    path = patent_like_csv(tmp_path / "patents.csv")
    config = {
        "data": {"pairs": str(path), "format": "scores", "template": TEMPLATE, "group_column": "anchor",
                 "folds": 4, "max_length": 24},
        "model": {"backbone": tiny_backbone},
        "train": {"epochs": 2, "batch_size": 16, "loss": "mse"},
        "search": {
            "name": "pat", "storage_path": str(tmp_path / "runs"), "metric": "val/pearson", "num_samples": 3,
            "max_concurrent_trials": 1, "grace_period": 1, "n_startup_trials": 2,
            "space": {"train.lr": {"loguniform": [1e-4, 1e-2]}, "train.loss": {"choice": ["mse", "margin"]}},
        },
    }
    cfg_path = tmp_path / "pat.yaml"
    cfg_path.write_text(yaml.safe_dump(config))
    out = run_cli("search", cfg_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    run = tmp_path / "runs" / "pat"
    data = json.loads((run / "pairtune_data.json").read_text())
    assert data["format"] == "scores" and data["split_method"] == "groups"
    board = read_leaderboard(run / "export" / "leaderboard.csv")
    assert len(board) == 3 and "best_pearson" in board.columns
    assert board.best_pearson.iloc[0] == board.best_pearson.max()  # ranked by the searched metric
    summary = json.loads((run / "export" / "summary.json").read_text())
    assert summary["metric"] == "val/pearson" and summary["best_value"] == pytest.approx(board.best_pearson.iloc[0])
    assert f"best val/pearson {summary['best_value']:.4f}" in out.stdout  # the summary names the searched metric
    # The kept checkpoint of the best trial is its best-Pearson validation.
    metrics = json.loads((Path(summary["best_checkpoint"]) / "metrics.json").read_text())
    results = [json.loads(line) for line in (run / summary["best_trial"] / "result.json").read_text().splitlines()]
    assert metrics["val/pearson"] == max(r["val/pearson"] for r in results)
    assert all(np.isfinite(r["val/spearman"]) for r in results)
    best = yaml.safe_load((run / "export" / "best.yaml").read_text())
    assert best["search"]["metric"] == "val/pearson" and best["data"]["template"] == TEMPLATE
