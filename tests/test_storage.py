"""Run directories on shared storage through pyarrow: local paths, file:// URIs and an S3-compatible
server (moto) on loopback."""

import json

import pyarrow.fs as pafs
import pytest

from search import storage
from search.tuner import best_checkpoint_name


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
        "checkpoint_000000": {"metrics.json": json.dumps({"val/agreement": 0.6}), "model.pt": "w0"},
        "checkpoint_000001": {"metrics.json": json.dumps({"val/agreement": 0.7}), "model.pt": "w1", "resume.ckpt": "r1"},
        "checkpoint_000002": {"resume.ckpt": "r2"},  # the latest: resume state only, no new best
    }
    for name, files in checkpoints.items():
        for file, text in files.items():
            storage.write_text(storage.join(trial, name, file), text)
    fs, path = storage.filesystem(trial)
    storage.prune_checkpoints(fs, path, best_checkpoint_name, "resume.ckpt")
    assert [n for n in storage.list_names(trial) if n.startswith("checkpoint_")] == ["checkpoint_000001"]
    assert storage.list_names(storage.join(trial, "checkpoint_000001")) == ["metrics.json", "model.pt"]
    assert isinstance(fs, pafs.S3FileSystem)
