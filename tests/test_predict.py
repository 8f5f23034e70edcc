"""Final models and prediction: `pairtune train --folds all / --full`, then `pairtune predict` on real
Jigsaw texts (comments_to_score.csv) with one model and with a fold ensemble."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from data.loaders import text_loader
from model.checkpoint import load_checkpoint, load_tokenizer_for
from model.losses import pairwise_agreement
from model.metrics import AGREEMENT
from search.cli.main import main
from search.config.load import load_config
from search.recipes.predict import score_texts
from search.tune.prepare import prepare_data

FOLDS = 2


@pytest.fixture(scope="module")
def config_path(tmp_path_factory, tiny_backbone, ruddit_pairs):
    tmp = tmp_path_factory.mktemp("final")
    raw = {
        "data": {"pairs": str(ruddit_pairs), "max_votes": 600, "folds": FOLDS, "max_length": 32},
        "model": {"backbone": tiny_backbone},
        "train": {"epochs": 1, "batch_size": 32, "lr": 1e-3},
        "search": {"name": "final", "space": {"train.lr": {"loguniform": [1e-5, 1e-3]}}},
    }
    path = tmp / "best.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def ensemble(config_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("ens") / "models"
    assert main(["train", str(config_path), "--folds", "all", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def texts_csv(tmp_path_factory):
    """The first 150 real texts to score, plus a repeated row (same id and text) and a repeated text
    under a new id, to check order and row count are kept."""
    from conftest import shared

    frame = pd.read_csv(shared("comments_to_score.csv"), dtype=str, keep_default_na=False).head(150)
    frame = pd.concat([frame, frame.iloc[[3]], frame.iloc[[7]].assign(comment_id="dup-7")], ignore_index=True)
    path = tmp_path_factory.mktemp("texts") / "comments.csv"
    frame.to_csv(path, index=False)
    return path, frame


def test_one_self_contained_model_per_fold(ensemble):
    summary = json.loads((ensemble / "ensemble.json").read_text())
    assert sorted(summary["folds"]) == [str(k) for k in range(FOLDS)]
    for k in range(FOLDS):
        d = ensemble / f"fold_{k}"
        for name in ("model.pt", "config.yaml", "metrics.json", "encoder/config.json", "encoder/tokenizer.json"):
            assert (d / name).exists(), d / name
        config = yaml.safe_load((d / "config.yaml").read_text())
        metrics = json.loads((d / "metrics.json").read_text())
        assert config["data"]["fold"] == k and metrics["fold"] == k
        assert config["search"]["space"] == {}  # the fixed values that were trained
        assert metrics[AGREEMENT] == pytest.approx(summary["folds"][str(k)]["best_agreement"])
    assert summary["mean_agreement"] == pytest.approx(np.mean([f["best_agreement"] for f in summary["folds"].values()]))


def test_model_dir_loads_without_the_original_backbone(ensemble, tmp_path, texts_csv):
    moved = tmp_path / "moved"
    shutil.copytree(ensemble / "fold_0", moved)
    config = yaml.safe_load((moved / "config.yaml").read_text())
    config["model"]["backbone"] = str(tmp_path / "no-such-backbone")
    (moved / "config.yaml").write_text(yaml.safe_dump(config))
    texts = list(texts_csv[1]["text"][:20])
    alone = score_texts(*_load(moved), texts, progress=False)
    original = score_texts(*_load(ensemble / "fold_0"), texts, progress=False)
    np.testing.assert_allclose(alone, original, rtol=0, atol=1e-6)


def _load(directory):
    module, config = load_checkpoint(directory)
    return module, config, load_tokenizer_for(directory, config)


def _predict(model, csv, out):
    assert main(["predict", str(model), str(csv), "-o", str(out), "--no-progress"]) == 0
    return pd.read_csv(out, dtype={"comment_id": str})


def test_ensemble_is_the_rank_average_of_its_folds(ensemble, texts_csv, tmp_path):
    path, frame = texts_csv
    combined = _predict(ensemble, path, tmp_path / "ens.csv")
    assert list(combined.columns) == ["comment_id", "score"]
    assert list(combined.comment_id) == list(frame.comment_id)  # same rows, same order, duplicates kept
    singles = [_predict(ensemble / f"fold_{k}", path, tmp_path / f"f{k}.csv") for k in range(FOLDS)]
    n = len(frame)
    ranks = np.mean([s.score.rank().to_numpy() for s in singles], axis=0)
    np.testing.assert_allclose(combined.score, (ranks - 1) / (n - 1), atol=1e-12)
    assert combined.score.between(0, 1).all()
    assert combined.score.iloc[-2] == combined.score.iloc[3] and combined.score.iloc[-1] == combined.score.iloc[7]
    assert singles[0].score.nunique() > n - 5  # raw scores of one model, not ranks


def test_predict_gives_the_models_own_validation_scores(ensemble, tmp_path):
    """Scores from `predict` on fold 0's validation texts are those the training loop validated with,
    and reproduce the agreement recorded in metrics.json."""
    model = ensemble / "fold_0"
    cfg = load_config(model / "config.yaml")
    prepared = prepare_data(cfg)
    data = prepared.fold_inputs(cfg.model.backbone, cfg.data.lowercase)
    texts, less, more = data.val_texts()
    votes = prepared.votes
    csv = tmp_path / "val.csv"
    pd.DataFrame({"comment_id": [f"t{i}" for i in texts], "text": [votes.texts[i] for i in texts]}).to_csv(csv, index=False)
    predicted = torch.from_numpy(_predict(model, csv, tmp_path / "val_scores.csv").score.to_numpy().copy())

    module, _ = load_checkpoint(model)
    own = torch.empty(len(texts), dtype=torch.float64)
    with torch.inference_mode():
        for batch in text_loader(data.tokens, texts, cfg.train.eval_batch_size, cfg.data.max_length):
            own[batch["position"]] = module(batch["input_ids"], batch["attention_mask"]).double()
    torch.testing.assert_close(predicted, own, rtol=0, atol=1e-5)
    recorded = json.loads((model / "metrics.json").read_text())[AGREEMENT]
    agreement = pairwise_agreement(predicted, torch.from_numpy(less), torch.from_numpy(more))
    assert agreement == pytest.approx(recorded, abs=1e-6)


def test_full_trains_on_all_votes_without_validation(config_path, tmp_path, capsys):
    assert main(["train", str(config_path), "--full", "--out", str(tmp_path / "full")]) == 0
    out = capsys.readouterr().out
    assert "trained on all 600 votes for 1 epochs" in out and "no validation" in out
    metrics = json.loads((tmp_path / "full" / "metrics.json").read_text())
    assert metrics["trained_on"] == "all votes" and metrics["votes"] == 600 and AGREEMENT not in metrics
    assert metrics["step"] == -(-600 // 32)  # one epoch over every vote
    assert (tmp_path / "full" / "encoder" / "tokenizer.json").exists()


@pytest.mark.parametrize("case, message", [
    ("missing", "comments.csv: file not found"),
    ("no_text", "missing column 'text' (--text-column)"),
    ("no_id", "missing column 'comment_id' (--id-column)"),
    ("header_only", "header only, no texts to score"),
    ("not_a_model", "not a model directory"),
    ("a_run", "run: a search run directory, not a model; predict with its best trial's checkpoint, {tmp}/run/t1/checkpoint_000002"),
    ("a_trial", "t1: a trial of a search, not a model; predict with its checkpoint, {tmp}/run/t1/checkpoint_000002"),
])
def test_predict_rejects_bad_input_clearly(case, message, ensemble, tmp_path, capsys):
    csv = tmp_path / "comments.csv"
    model = ensemble
    if case == "no_text":
        csv.write_text("comment_id,comment\n1,hello\n")
    elif case == "no_id":
        csv.write_text("id,text\n1,hello\n")
    elif case == "header_only":
        csv.write_text("comment_id,text\n")
    elif case == "not_a_model":
        csv.write_text("comment_id,text\n1,hello\n")
        model = tmp_path
    elif case in ("a_run", "a_trial"):  # a search's run directory, or one of its trials, given for a model
        csv.write_text("comment_id,text\n1,hello\n")
        (tmp_path / "run" / "t1" / "checkpoint_000002").mkdir(parents=True)  # its best validation (kept scores) ...
        (tmp_path / "run" / "t1" / "checkpoint_000002" / "val_scores.npy").write_bytes(b"")
        (tmp_path / "run" / "t1" / "checkpoint_000003").mkdir()  # ... and a newer, worse one
        (tmp_path / "run" / "t1" / "params.json").write_text("{}")
        (tmp_path / "run" / "pairtune_config.yaml").write_text("search: {name: run}\n")
        (tmp_path / "run" / "export").mkdir()
        # exported where the run was before it was moved here: the hint names the checkpoint where it is now
        (tmp_path / "run" / "export" / "summary.json").write_text(json.dumps({"best_checkpoint": "/moved/from/run/t1/checkpoint_000002"}))
        model = tmp_path / "run" if case == "a_run" else tmp_path / "run" / "t1"
        message = message.format(tmp=tmp_path)
    assert main(["predict", str(model), str(csv), "-o", str(tmp_path / "s.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pairtune: error: ") and message in err, err
    assert not (tmp_path / "s.csv").exists()


def test_predict_warns_of_empty_texts_and_repeated_ids_naming_file_and_rows(tmp_path, caplog):
    """Both are scorable, so they are warnings, not errors: every row still gets its score, in order. A
    repeated id is worth saying before the scores go anywhere that needs unique ids (a Kaggle submission)."""
    import logging

    from search.recipes.predict import read_texts

    csv = tmp_path / "comments.csv"
    csv.write_text("comment_id,text\n7,you idiot\n8,\n7,thanks\n9,ok\n9,ok again\n9,fine\n")
    with caplog.at_level(logging.WARNING, logger="search"):
        frame = read_texts(csv)
    assert frame.comment_id.tolist() == ["7", "8", "7", "9", "9", "9"]  # nothing dropped or merged
    assert f"{csv}: rows with an empty text: 1; they are scored as empty texts" in caplog.text
    assert f"{csv}: ids on more than one row: 2 (5 rows): '7' on rows 2, 4; '9' on rows 5, 6, 7; each row" in caplog.text
    caplog.clear()
    csv.write_text("comment_id,text\n1,a\n2,b\n")
    with caplog.at_level(logging.WARNING, logger="search"):
        read_texts(csv)
    assert caplog.text == ""


def test_train_rejects_unknown_folds(config_path, capsys):
    assert main(["train", str(config_path), "--folds", "0,5"]) == 2
    assert "--folds 0,5: folds must be in 0..1" in capsys.readouterr().err


# Nothing lost, nothing silent (issue 20): predict never overwrites what it reads, an ensemble is what
# its ensemble.json says, every model is loaded and the output checked before any scoring, and a
# damaged model directory is one line naming the file.

def _one_error_line(out, *fragments):
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("pairtune: error: ")]
    assert len(errors) == 1, out.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


@pytest.fixture
def ensemble_copy(ensemble, tmp_path):
    """A copy of the trained ensemble that a test may damage (or that a bug could overwrite)."""
    return shutil.copytree(ensemble, tmp_path / "ens")


@pytest.mark.parametrize("where", ["own-weights", "ensemble-dir", "member-dir", "other-model-dir", "run-dir"])
def test_predict_never_writes_into_a_model_or_run_directory(where, ensemble_copy, texts_csv, tmp_path, run_cli):
    model, out = {
        "own-weights": (ensemble_copy / "fold_0", ensemble_copy / "fold_0" / "model.pt"),
        "ensemble-dir": (ensemble_copy, ensemble_copy / "scores.csv"),
        "member-dir": (ensemble_copy, ensemble_copy / "fold_1" / "encoder" / "scores.csv"),
        "other-model-dir": (ensemble_copy / "fold_0", ensemble_copy / "fold_1" / "scores.csv"),
        "run-dir": (ensemble_copy / "fold_0", tmp_path / "run" / "export" / "scores.csv"),
    }[where]
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "pairtune_config.yaml").write_text("search: {name: run}\n")
    weights = {p: p.read_bytes() for p in ensemble_copy.glob("fold_*/model.pt")}
    result = run_cli("predict", model, texts_csv[0], "-o", out, "--no-progress")
    _one_error_line(result, f"-o {out}: inside ", "choose an output outside it")
    assert not out.exists() or out.name == "model.pt"
    assert {p: p.read_bytes() for p in weights} == weights  # no model file touched


def test_ensemble_missing_a_member_is_an_error_naming_it(ensemble_copy, texts_csv, tmp_path, run_cli):
    (ensemble_copy / "fold_1" / "model.pt").unlink()
    out = run_cli("predict", ensemble_copy, texts_csv[0], "-o", tmp_path / "s.csv", "--no-progress")
    _one_error_line(out, f"{ensemble_copy / 'fold_1'}: ", "model.pt", f"{ensemble_copy / 'ensemble.json'}")
    assert not (tmp_path / "s.csv").exists()


def test_ensemble_member_directory_gone_is_an_error_naming_it(ensemble_copy, texts_csv, tmp_path, run_cli):
    shutil.rmtree(ensemble_copy / "fold_0")
    out = run_cli("predict", ensemble_copy, texts_csv[0], "-o", tmp_path / "s.csv", "--no-progress")
    _one_error_line(out, f"{ensemble_copy / 'fold_0'}: ")


def test_ensemble_extra_fold_directory_is_an_error_naming_it(ensemble_copy, texts_csv, tmp_path, run_cli):
    shutil.copytree(ensemble_copy / "fold_0", ensemble_copy / "fold_0_old")
    out = run_cli("predict", ensemble_copy, texts_csv[0], "-o", tmp_path / "s.csv", "--no-progress")
    _one_error_line(out, f"{ensemble_copy / 'fold_0_old'}: not a member", "fold_0, fold_1")
    assert not (tmp_path / "s.csv").exists()


@pytest.mark.parametrize("damage", ["missing", "unreadable", "no-folds"])
def test_ensemble_needs_its_ensemble_json(damage, ensemble_copy, texts_csv, tmp_path, run_cli):
    manifest = ensemble_copy / "ensemble.json"
    if damage == "missing":
        manifest.unlink()
    elif damage == "unreadable":
        manifest.write_text('{"folds": {"0": ')
    else:
        manifest.write_text('{"mean_agreement": 0.5}')
    out = run_cli("predict", ensemble_copy, texts_csv[0], "-o", tmp_path / "s.csv", "--no-progress")
    expected = f"{ensemble_copy}: not a model directory nor a fold ensemble: it holds fold_0, fold_1 but no ensemble.json" if damage == "missing" else \
        f"{manifest} is damaged or not a pairtune ensemble"
    _one_error_line(out, expected)


@pytest.fixture
def count_scoring(monkeypatch):
    """How many times predict started scoring a model."""
    import search.recipes.predict

    calls = []
    real = search.recipes.predict.score_texts

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(search.recipes.predict, "score_texts", counted)
    return calls


@pytest.mark.parametrize("case", ["out-is-a-directory", "parent-is-a-file"])
def test_bad_output_path_is_refused_before_scoring(case, ensemble, texts_csv, tmp_path, run_cli, count_scoring):
    (tmp_path / "file.txt").write_text("not a directory")
    out, why = {"out-is-a-directory": (tmp_path, "is a directory; give a file name"),
                "parent-is-a-file": (tmp_path / "file.txt" / "sub" / "s.csv", f"{tmp_path / 'file.txt'} is a file, not a directory")}[case]
    result = run_cli("predict", ensemble, texts_csv[0], "-o", out, "--no-progress")
    _one_error_line(result, f"-o {out}: ", why)
    assert count_scoring == []


def test_a_damaged_last_fold_is_found_before_the_first_is_scored(ensemble_copy, texts_csv, tmp_path, run_cli, count_scoring):
    weights = ensemble_copy / "fold_1" / "model.pt"
    weights.write_bytes(weights.read_bytes()[:1000])
    out = run_cli("predict", ensemble_copy, texts_csv[0], "-o", tmp_path / "s.csv", "--no-progress")
    _one_error_line(out, f"{weights} is damaged or not a pairtune model")
    assert count_scoring == []


@pytest.mark.parametrize("damage", ["random-bytes", "truncated", "empty", "not-a-state-dict", "wrong-shapes",
                                    "config-not-yaml", "config-not-a-mapping", "config-wrong-keys", "encoder-config"])
def test_damaged_model_directory_is_one_line_naming_the_file(damage, ensemble, texts_csv, tmp_path, run_cli):
    model = shutil.copytree(ensemble / "fold_0", tmp_path / "model")
    weights, config, damaged = model / "model.pt", model / "config.yaml", model / "model.pt"
    if damage == "random-bytes":
        weights.write_bytes(np.random.default_rng(0).bytes(5000))
    elif damage == "truncated":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif damage == "empty":
        weights.write_bytes(b"")
    elif damage == "not-a-state-dict":
        torch.save([1, 2, 3], weights)
    elif damage == "wrong-shapes":
        state = torch.load(weights, weights_only=True)
        state[next(iter(state))] = torch.zeros(3)
        torch.save(state, weights)
    elif damage.startswith("config"):
        damaged = config
        config.write_text({"config-not-yaml": "model: {backbone: [\n", "config-not-a-mapping": "- model\n- train\n",
                           "config-wrong-keys": "model: {size: 3}\ntrain: {}\ndata: {}\n"}[damage])
    else:
        damaged = model / "encoder" / "config.json"
        damaged.write_text("{not json")
    out = run_cli("predict", model, texts_csv[0], "-o", tmp_path / "s.csv", "--no-progress")
    line = _one_error_line(out, f"{damaged} is damaged or not a pairtune model")
    assert "weights_only" not in out.stderr and "weights_only" not in line
    assert not (tmp_path / "s.csv").exists()
