"""Scored texts and multi-label rows: reading, leak-free folds, derived pairs, validation metrics."""

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import torch
import yaml
from conftest import shared

from data import DataError
from data.config import DataConfig
from data.loaders import text_loader
from data.scores import derive_pairs, read_scored, scored_split
from model.losses import pearson, spearman
from search.config.load import load_config
from search.config.parse import ConfigError, parse_config
from search.tune.prepare import load_split, prepare_data

JIGSAW_WEIGHTS = {"toxic": 1, "severe_toxic": 2, "obscene": 1, "threat": 1.5, "insult": 1, "identity_hate": 1.5}


def ruddit_cfg(**extra) -> DataConfig:
    return DataConfig(pairs=str(shared("ruddit_scores.csv")), format="scores", score_column="offensiveness_score", **extra)


def jigsaw_cfg(**extra) -> DataConfig:
    return DataConfig(pairs=str(shared("jigsaw_classification_sample.csv")), format="labels", text_column="comment_text",
                      label_weights=JIGSAW_WEIGHTS, folds=3, **extra)


def test_ruddit_scores_become_leak_free_ordered_pairs():
    cfg = ruddit_cfg()
    data = read_scored(cfg)
    frame = pd.read_csv(shared("ruddit_scores.csv"), keep_default_na=False)
    assert len(data.texts) == frame.text.nunique()
    votes, split = scored_split(data, cfg)
    # Every derived pair puts the lower score first; equal scores never pair.
    assert (votes.scores[votes.less] < votes.scores[votes.more]).all()
    # Folds were made over texts before deriving: training pairs never touch a validation text.
    fold = votes.text_fold
    train, val = split.train_votes, split.val_votes
    assert (fold[votes.less[train]] != 0).all() and (fold[votes.more[train]] != 0).all()
    assert (fold[votes.less[val]] == 0).all() and (fold[votes.more[val]] == 0).all()
    assert split.dropped_votes == 0
    # About pairs_per_text partners per text, each unordered pair once.
    pairs = set(zip(votes.less.tolist(), votes.more.tolist()))
    assert len(pairs) == votes.n_votes
    assert 2 * len(data.texts) < votes.n_votes <= 5 * len(data.texts)
    # Deterministic.
    again, _ = scored_split(read_scored(cfg), cfg)
    assert np.array_equal(again.less, votes.less) and np.array_equal(again.more, votes.more)


def test_min_score_gap_and_per_text_partners():
    scores = np.array([0.0, 0.0, 0.1, 0.5, 0.9, 1.0])
    less, more = derive_pairs(np.arange(6), scores, per_text=10, min_gap=0.3, seed=0)
    gaps = scores[more] - scores[less]
    assert (gaps > 0.3).all()
    # Every pair whose gap exceeds 0.3 is found when per_text allows all of them.
    expected = {(i, j) for i in range(6) for j in range(6) if scores[j] - scores[i] > 0.3}
    assert set(zip(less.tolist(), more.tolist())) == expected


def test_jigsaw_labels_are_scored_by_weights():
    cfg = jigsaw_cfg()
    data = read_scored(cfg)
    frame = pd.read_csv(shared("jigsaw_classification_sample.csv"), keep_default_na=False)
    expected = sum(w * frame[c].astype(float) for c, w in JIGSAW_WEIGHTS.items())
    by_text = dict(zip(frame.comment_text, expected))
    assert len(data.texts) == 300
    assert all(by_text[t] == s for t, s in zip(data.texts, data.scores))
    votes, split = scored_split(data, cfg)
    assert len(split.val_votes) > 0 and len(split.train_votes) > 0
    assert (votes.scores[votes.less] < votes.scores[votes.more]).all()


def test_group_column_keeps_each_group_in_one_fold(tmp_path):
    rng = np.random.default_rng(1)
    rows = [{"text": f"text {i}", "score": rng.uniform(), "group": f"g{i % 17}"} for i in range(200)]
    path = tmp_path / "grouped.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    cfg = DataConfig(pairs=str(path), format="scores", group_column="group", folds=4)
    data = read_scored(cfg)
    votes, split = scored_split(data, cfg)
    assert split.method == "groups"
    for group in np.unique(data.groups):
        assert len(np.unique(votes.text_fold[data.groups == group])) == 1
    sizes = np.bincount(votes.text_fold)
    assert sizes.max() - sizes.min() <= 12  # groups of 11-12 texts packed into balanced folds


def write(tmp_path, text: str, name="d.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_bad_scored_input_names_file_row_and_column(tmp_path):
    path = write(tmp_path, "text,score\nfine,0.5\nalso fine,high\n")
    with pytest.raises(DataError, match=r"d\.csv: row 3: column 'score' \(data\.score_column\) must be a number, got 'high'"):
        read_scored(DataConfig(pairs=str(path), format="scores"))
    with pytest.raises(DataError, match=r"missing column 'rating' \(data\.score_column\)"):
        read_scored(DataConfig(pairs=str(path), format="scores", score_column="rating"))
    path = write(tmp_path, "text,score\na,1\nb,1\nc,1\n")
    with pytest.raises(DataError, match="every text has the same score"):
        read_scored(DataConfig(pairs=str(path), format="scores"))
    path = write(tmp_path, "comment_text,toxic\nx,1\ny,0\n")
    with pytest.raises(DataError, match=r"d\.csv: missing column\(s\) \['insult'\] \(data\.label_weights\)"):
        read_scored(DataConfig(pairs=str(path), format="labels", text_column="comment_text", label_weights={"toxic": 1, "insult": 1}))


def test_bad_scored_config_is_named_by_key():
    with pytest.raises(ConfigError) as e:
        parse_config({"data": {"format": "labels"}}, "c.yaml")
    assert "c.yaml: data.label_weights: format labels needs" in str(e.value)
    with pytest.raises(ConfigError) as e:
        parse_config({"data": {"format": "labels", "label_weights": {"toxic": "high"}}}, "c.yaml")
    assert "c.yaml: data.label_weights.toxic: must be a number, got 'high'" in str(e.value)
    with pytest.raises(ConfigError) as e:
        parse_config({"data": {"format": "table"}}, "c.yaml")
    assert "c.yaml: data.format: must be one of ['pairs', 'scores', 'labels']" in str(e.value)
    with pytest.raises(ConfigError) as e:
        parse_config({"train": {"loss": "mse"}}, "c.yaml")
    assert "c.yaml: train.loss: mse regresses each text's score, so it needs data.format scores or labels" in str(e.value)
    with pytest.raises(ConfigError) as e:
        parse_config({"data": {"format": "scores", "template": "{anchor} {}"}}, "c.yaml")
    assert "c.yaml: data.template: every {} in the template must name a column" in str(e.value)


def test_pearson_and_spearman_match_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=50), rng.normal(size=50)
    b[:10] = b[10]  # ties
    assert pearson(a, b) == pytest.approx(scipy.stats.pearsonr(a, b)[0])
    assert spearman(a, b) == pytest.approx(scipy.stats.spearmanr(a, b)[0])
    assert pearson(np.ones(5), np.arange(5.0)) == 0.0  # a constant scorer orders nothing


@pytest.mark.parametrize("loss", ["margin", "mse"])
def test_training_on_scored_ruddit_logs_pearson_and_spearman(tiny_backbone, loss):
    from model.metrics import AGREEMENT, PEARSON, SPEARMAN, VAL_LOSS
    from model.train import fit

    cfg = parse_config({
        "data": {"pairs": str(shared("ruddit_scores.csv")), "format": "scores", "score_column": "offensiveness_score",
                 "max_texts": 240, "max_train_votes": 256, "folds": 4, "max_length": 32},
        "model": {"backbone": tiny_backbone},
        "train": {"epochs": 1, "batch_size": 32, "loss": loss, "lr": 1e-3},
    })
    prepared = prepare_data(cfg)
    data = prepared.fold_inputs(cfg.model.backbone, cfg.data.lowercase)
    assert prepared.summary()["train_texts"] == len(data.train_texts) == 180
    assert len(data.train_less) == 256 and len(data.val_less) > 100
    seen = []
    module, _ = fit(cfg.model, cfg.train, data, 32, lambda r, m: seen.append(dict(m.trainer.callback_metrics)))
    metrics = {k: float(v) for k, v in seen[-1].items()}
    for key in (AGREEMENT, VAL_LOSS):
        assert np.isfinite(metrics[key]), key
    # The logged correlations are those of the trained model's own scores for the validation texts
    # (scored again here, one epoch so its only validation) against their true scores, by scipy.
    texts, _, _ = data.val_texts()
    scores = np.empty(len(texts), dtype=np.float32)
    module.eval()
    with torch.no_grad():
        for batch in text_loader(data.tokens, texts, 64, 32):
            scores[batch["position"].numpy()] = module(batch["input_ids"], batch["attention_mask"]).numpy()
    truth = data.scores[texts]
    assert metrics[PEARSON] == pytest.approx(scipy.stats.pearsonr(scores, truth)[0], abs=1e-5)
    assert metrics[SPEARMAN] == pytest.approx(scipy.stats.spearmanr(scores, truth)[0], abs=1e-5)
    # Pointwise training steps over texts, pairwise over derived pairs.
    items = len(data.train_texts) if loss == "mse" else len(data.train_less)
    assert module.trainer.global_step == -(-items // 32)


def test_check_summarises_scored_data(tmp_path, run_cli):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({
        "data": {"pairs": str(shared("jigsaw_classification_sample.csv")), "format": "labels",
                 "text_column": "comment_text", "label_weights": JIGSAW_WEIGHTS, "folds": 3, "max_length": 32},
        "model": {"backbone": "minilm"},
    }))
    out = run_cli("check", config)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "texts:        300 unique texts (data.format labels), split by texts" in out.stdout
    cfg = load_config(config)
    _, split = load_split(cfg)
    assert f"{len(split.val_votes)} derived pairs)" in out.stdout


def test_train_folds_all_on_scored_data_uses_each_folds_own_derived_pairs(tmp_path, tiny_backbone):
    """Every fold model validates on the pairs the search derives for that fold (texts split first)."""
    import json

    from search.config.parse import with_params
    from search.recipes.train import train_config

    raw = {"data": {"format": "scores", "pairs": str(shared("ruddit_scores.csv")), "score_column": "offensiveness_score",
                    "max_texts": 240, "folds": 3, "max_length": 32},
           "model": {"backbone": tiny_backbone}, "train": {"epochs": 1, "batch_size": 16}, "search": {"name": "sc"}}
    path = tmp_path / "sc.yaml"
    path.write_text(yaml.safe_dump(raw))
    cfg = load_config(path)
    train_config(cfg, str(tmp_path / "out"), folds=[0, 1, 2])
    folds = json.loads((tmp_path / "out" / "ensemble.json").read_text())["folds"]
    for k in range(3):
        _, split = load_split(with_params(cfg, {"data.fold": k}))
        assert folds[str(k)]["val_votes"] == len(split.val_votes)
        assert folds[str(k)]["train_votes"] == len(split.train_votes)
