from types import SimpleNamespace

import pytest

from search.config import ConfigError, parse_config
from search.tuner import fresh_run, preflight, run_dir, trial_name


def test_rerun_with_the_same_name_gets_its_own_directory(tmp_path):
    cfg = parse_config({"search": {"name": "q", "storage_path": str(tmp_path)}}, "mem")
    assert fresh_run(cfg) is cfg  # nothing there yet
    run_dir(cfg).mkdir(parents=True)
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


def test_explicit_fp16_on_a_gpu_cuda_cannot_see_fails_the_trial_naming_its_node():
    """An explicit precision is kept or refused, never swapped: a declared GPU that CUDA cannot see
    (a logical Ray GPU here) fails a 16-mixed trial with a message naming the node; auto falls back."""
    import ray

    from model.precision import PrecisionError
    from search.trial import placement

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=1, num_gpus=1, include_dashboard=False)
    try:
        @ray.remote(num_gpus=1, num_cpus=0)
        def where(precision):
            try:
                return placement(True, precision)
            except PrecisionError as e:
                return str(e)

        message = ray.get(where.remote("16-mixed"))
        assert isinstance(message, str) and "16-mixed needs a CUDA GPU" in message
        assert ray.util.get_node_ip_address() in message and "GPU 0" in message and "auto" in message
        fallback = ray.get(where.remote("auto"))
        assert fallback["device"] == "cpu" and fallback["precision"] == "32-true"
    finally:
        if started:
            ray.shutdown()
