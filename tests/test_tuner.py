from types import SimpleNamespace

import pytest

from search.config.parse import ConfigError, parse_config
from search.runs.layout import run_dir
from search.tune.preflight import preflight
from search.tune.tuner import fresh_run, trial_name


def test_rerun_with_the_same_name_gets_its_own_directory(tmp_path):
    cfg = parse_config({"search": {"name": "q", "storage_path": str(tmp_path)}}, "mem")
    assert fresh_run(cfg) is cfg  # nothing there yet
    assert (run_dir(cfg) / "pairtune_config.yaml").exists()  # claimed
    (run_dir(cfg) / "pairtune_config.yaml").unlink()  # an older run, from before runs were claimed
    (run_dir(cfg) / "experiment_state-2026-01-01_00-00-00.json").write_text("{}")
    again = fresh_run(cfg)
    assert again.search.name.startswith("q-") and run_dir(again).parent == tmp_path


def test_trial_names_are_readable():
    trial = SimpleNamespace(trial_id="ab12", config={"train.lr": 0.000123456, "train.loss": "margin"})
    assert trial_name(trial) == "ab12_loss=margin_lr=0.000123"


def test_preflight_checks_every_backbone_choice(tmp_path):
    cfg = parse_config({"search": {"space": {"model.backbone": {"choice": ["minilm", str(tmp_path / "nope")]}}}}, "c.yaml")
    with pytest.raises(ConfigError, match=r"c.yaml: model.backbone: backbone path .*nope does not exist"):
        preflight(cfg)


@pytest.mark.slow  # starts a local Ray
def test_explicit_fp16_on_a_gpu_cuda_cannot_see_fails_the_trial_naming_its_node():
    """An explicit precision is kept or refused, never swapped: a declared GPU that CUDA cannot see
    (a logical Ray GPU here) fails a 16-mixed trial with a message naming the node; auto falls back."""
    import ray

    from model.precision import PrecisionError
    from search.tune.placement import placement

    if ray.is_initialized():  # an earlier test's local Ray (no GPUs): this test needs one declaring a GPU
        ray.shutdown()
    # address="local": a new instance, as pairtune starts one; a bare ray.init() would join a `ray start`
    # cluster on this machine (tests/test_cluster_jobs.py's, under pytest -n 2) and refuse num_gpus.
    ray.init(address="local", num_cpus=1, num_gpus=1, include_dashboard=False)
    try:
        @ray.remote(num_gpus=1, num_cpus=0)
        def where(precision):
            try:
                return placement(True, precision)
            except PrecisionError as e:
                return str(e)

        message = ray.get(where.remote("16-mixed"), timeout=300)
        assert isinstance(message, str) and "16-mixed needs a CUDA GPU" in message
        assert ray.util.get_node_ip_address() in message and "GPU 0" in message and "auto" in message
        fallback = ray.get(where.remote("auto"), timeout=300)
        assert fallback["device"] == "cpu" and fallback["precision"] == "32-true"
    finally:
        ray.shutdown()


def race(fn, n=8):
    """fn() called from n threads released together; their results."""
    import threading

    barrier, results = threading.Barrier(n), [None] * n

    def one(i):
        barrier.wait()
        results[i] = fn()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.mark.parametrize("kind", ["local", "file-uri"])
def test_only_one_of_racing_claims_gets_a_run_directory(kind, tmp_path):
    """Local paths claim with O_EXCL; URIs (no O_EXCL on object stores) write a claim each and the
    earliest wins. file:// goes through the same pyarrow code as s3:// / gs://."""
    from search.runs import storage

    run = tmp_path / "runs" / "q" if kind == "local" else f"file://{tmp_path}/runs/q"
    won = race(lambda: storage.claim(run, "pairtune_config.yaml", "mine\n"))
    assert won.count(True) == 1
    assert storage.read_text(storage.join(run, "pairtune_config.yaml")) == "mine\n"


def test_searches_started_together_get_different_run_directories(tmp_path):
    """The check-then-create race of two `pairtune search` runs with one name: Ray writes its
    experiment state only once the search has started, so that state cannot be the claim."""
    cfg = parse_config({"search": {"name": "q", "storage_path": str(tmp_path)}}, "mem")
    names = [c.search.name for c in race(lambda: fresh_run(cfg), n=4)]
    assert len(set(names)) == 4 and "q" in names
    for name in names:  # each claimed its directory by writing its config there
        assert (tmp_path / name / "pairtune_config.yaml").exists()


def test_a_resumed_trial_whose_latest_checkpoint_is_gone_continues_from_the_one_ray_kept(tmp_path):
    """A driver killed after Ray registered a trial's new checkpoint (deleting the one before: num_to_keep
    1 keeps the best and the latest) and before it saved its state: the saved state names a deleted
    directory. On resume the trial continues from its best checkpoint (it holds resume state), not fails."""
    import pickle

    from ray import tune
    from ray.train._internal.checkpoint_manager import _CheckpointManager, _TrainingResult

    from search.runs.layout import CHECKPOINT_SCORE, NOT_BEST_SCORE, RESUME_FILE
    from search.tune.callbacks import recover_callback

    manager = _CheckpointManager(tune.CheckpointConfig(num_to_keep=1, checkpoint_score_attribute=CHECKPOINT_SCORE,
                                                       checkpoint_score_order="max"))

    def validate(i, score, resume=True):
        d = tmp_path / f"checkpoint_{i:06d}"
        d.mkdir()
        if resume:
            (d / RESUME_FILE).write_text("state")
        manager.register_checkpoint(_TrainingResult(tune.Checkpoint.from_directory(str(d)),
                                                    {"training_iteration": i + 1, CHECKPOINT_SCORE: score}))
        return d

    best = validate(0, 0.7)
    validate(1, NOT_BEST_SCORE)
    named = validate(2, NOT_BEST_SCORE)
    saved = pickle.loads(pickle.dumps(manager))  # the experiment state Ray saved: latest is checkpoint 2
    validate(3, NOT_BEST_SCORE)  # registered, then the driver is killed before the state is saved again
    assert not named.exists() and best.exists()  # Ray deleted checkpoint 2

    trial = SimpleNamespace(trial_id="t1", run_metadata=SimpleNamespace(checkpoint_manager=saved))
    assert saved.latest_checkpoint_result.checkpoint.path == str(named)
    recover_callback().on_trial_start(0, [trial], trial)
    assert saved.latest_checkpoint_result.checkpoint.path == str(best)
    assert saved.latest_checkpoint_result.metrics["training_iteration"] == 1

    # A best checkpoint without resume state (its training was over) cannot be continued: from the start.
    (best / RESUME_FILE).unlink()
    saved = pickle.loads(pickle.dumps(manager))
    saved._latest_checkpoint_result = _TrainingResult(tune.Checkpoint.from_directory(str(named)), {"training_iteration": 3})
    trial = SimpleNamespace(trial_id="t1", run_metadata=SimpleNamespace(checkpoint_manager=saved))
    recover_callback().on_trial_start(0, [trial], trial)
    assert saved.latest_checkpoint_result is None
    # A latest checkpoint that is there is left alone.
    kept = manager.latest_checkpoint_result
    trial = SimpleNamespace(trial_id="t1", run_metadata=SimpleNamespace(checkpoint_manager=manager))
    recover_callback().on_trial_start(0, [trial], trial)
    assert manager.latest_checkpoint_result is kept
