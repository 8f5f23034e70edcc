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
    from search.tune.trial import placement

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
