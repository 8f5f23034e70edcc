"""Run directories on shared storage through pyarrow: local paths, file:// URIs and an S3-compatible
server (moto) on loopback."""

import json

import pyarrow.fs as pafs
import pytest

from search.runs import storage


def test_uris_keep_their_query_and_local_paths_stay_paths(tmp_path):
    uri = "s3://bucket/runs/?endpoint_override=127.0.0.1:9000&scheme=http"
    assert storage.location(uri) == "s3://bucket/runs?endpoint_override=127.0.0.1:9000&scheme=http"
    run = storage.join(storage.location(uri), "name")
    assert run == "s3://bucket/runs/name?endpoint_override=127.0.0.1:9000&scheme=http"
    assert storage.join(run, "export", "best.yaml") == "s3://bucket/runs/name/export/best.yaml?endpoint_override=127.0.0.1:9000&scheme=http"
    assert storage.parent(run) == storage.location(uri)
    assert storage.name(run) == "name"
    local = storage.location(str(tmp_path / "a" / ".." / "b"))
    assert local == (tmp_path / "b").resolve() and storage.join(local, "x") == local / "x"


@pytest.mark.parametrize("kind", ["local", "file", "s3"])
def test_files_round_trip(kind, tmp_path, request):
    if kind == "s3":
        base = "s3://pairtune-test/rt" + request.getfixturevalue("s3_server")
    else:
        base = ("file://" if kind == "file" else "") + str(tmp_path / "rt")
    run = storage.join(storage.location(base), "run")
    storage.makedirs(run)
    assert not storage.has_experiment(run)
    storage.write_text(storage.join(run, "experiment_state-1.json"), "{}")
    assert storage.has_experiment(run)
    stops = storage.join(run, "pairtune_stops.jsonl")
    storage.append_line(stops, '{"trial_id": "a"}')
    storage.append_line(stops, '{"trial_id": "b"}')  # object stores cannot append: rewritten whole
    assert storage.read_text(stops).splitlines() == ['{"trial_id": "a"}', '{"trial_id": "b"}']
    storage.makedirs(storage.join(run, "t1", "checkpoint_000000"))
    storage.write_text(storage.join(run, "t1", "checkpoint_000000", "model.pt"), "weights")
    storage.write_text(storage.join(run, "t1", "result.json"), "{}\n")
    local = storage.download(run, tmp_path / "copy")
    assert (local / "t1" / "result.json").exists() and (local / "pairtune_stops.jsonl").exists()
    assert not (local / "t1" / "checkpoint_000000").exists()  # results only, checkpoints stay in storage
    (local / "export").mkdir()
    (local / "export" / "best.yaml").write_text("x: 1\n")
    storage.upload(local / "export", storage.join(run, "export"))
    assert storage.read_text(storage.join(run, "export", "best.yaml")) == "x: 1\n"


def test_finished_trial_on_s3_keeps_only_its_best_checkpoint(s3_server):
    """PruneCheckpoints on shared storage: the best checkpoint with a model stays, without resume state."""
    trial = storage.join("s3://pairtune-test/prune/t1" + s3_server)
    checkpoints = {
        "checkpoint_000000": {"metrics.json": json.dumps({"val/agreement": 0.6, "checkpoint_score": 0.6}), "model.pt": "w0"},
        "checkpoint_000001": {"metrics.json": json.dumps({"val/agreement": 0.7, "checkpoint_score": 0.7}), "model.pt": "w1",
                              "resume.ckpt": "r1"},
        "checkpoint_000002": {"resume.ckpt": "r2"},  # the latest: resume state only, no new best
    }
    for name, files in checkpoints.items():
        for file, text in files.items():
            storage.write_text(storage.join(trial, name, file), text)
    fs, path = storage.filesystem(trial)
    storage.prune_checkpoints(fs, path, "checkpoint_score", "resume.ckpt")
    assert [n for n in storage.list_names(trial) if n.startswith("checkpoint_")] == ["checkpoint_000001"]
    assert storage.list_names(storage.join(trial, "checkpoint_000001")) == ["metrics.json", "model.pt"]
    assert isinstance(fs, pafs.S3FileSystem)


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_pruning_keeps_the_best_checkpoint_by_the_search_metric_on_any_storage(kind, tmp_path, request):
    """One rule on local disk and on S3: the checkpoint with the best checkpoint_score (the searched
    metric, here val/loss negated), not the best agreement."""
    base = ("s3://pairtune-test/prune2" + request.getfixturevalue("s3_server")) if kind == "s3" else str(tmp_path)
    trial = storage.join(storage.location(base), "t1")
    checkpoints = {
        "checkpoint_000000": {"val/agreement": 0.70, "val/loss": 0.60, "checkpoint_score": -0.60},
        "checkpoint_000001": {"val/agreement": 0.65, "val/loss": 0.50, "checkpoint_score": -0.50},
    }
    for name, metrics in checkpoints.items():
        storage.write_text(storage.join(trial, name, "metrics.json"), json.dumps(metrics))
        storage.write_text(storage.join(trial, name, "model.pt"), "w")
    fs, path = storage.filesystem(trial)
    storage.prune_checkpoints(fs, path, "checkpoint_score", "resume.ckpt")
    assert [n for n in storage.list_names(trial) if n.startswith("checkpoint_")] == ["checkpoint_000001"]


def test_run_files_of_a_run_on_s3_go_through_storage(s3_server, tmp_path, monkeypatch):
    """The baseline and the trackers' local files of an s3:// run: written into the run, read back."""
    import numpy as np

    from data import FoldSplit, PairVotes
    from search.tune.baseline import write_baseline
    from search.runs.layout import read_baseline
    from search.tune.tracking import default_mlflow_uri

    monkeypatch.setenv("PAIRTUNE_CACHE", str(tmp_path / "cache"))
    run = storage.location("s3://pairtune-test/files/run" + s3_server)
    texts = [f"text {i} " + "bad " * (i % 5) for i in range(40)]
    less, more = np.arange(0, 38, 2), np.arange(1, 39, 2)
    votes = PairVotes(texts=texts, less=less, more=more, source="mem")
    split = FoldSplit(fold=0, n_folds=2, method="test", train_votes=np.arange(12), val_votes=np.arange(12, 19), dropped_votes=0)
    written = write_baseline(run, votes, split)
    assert read_baseline(run) == written
    uri = default_mlflow_uri(run)
    assert uri.startswith("sqlite:///" + str(tmp_path / "cache"))
    local_db = uri[len("sqlite:///"):]
    with open(local_db, "w") as f:
        f.write("db")
    storage.sync_driver_files(run)
    assert storage.read_text(storage.join(run, "mlflow.db")) == "db"
