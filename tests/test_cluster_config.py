"""cluster.yaml (AWS) and cluster-onprem.yaml (local provider) pass Ray's own cluster config validator
offline, and say what we promise: a CPU head that runs no trials, GPU workers, token authentication on
every node, the dashboard on loopback, the project and token synced, Ray versions that match."""

import copy
import re
from pathlib import Path

import pytest
import ray
import yaml

from search.config.load import load_config

ROOT = Path(__file__).resolve().parents[1]
CLUSTERS = ["cluster.yaml", "cluster-onprem.yaml"]


def raw(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text())


def validate(config: dict) -> dict:
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(config))  # fills provider defaults, no cloud calls
    validate_config(prepared)
    return prepared


@pytest.mark.parametrize("name", CLUSTERS)
def test_passes_rays_validator(name):
    validate(raw(name))


@pytest.mark.parametrize("name", CLUSTERS)
def test_the_validator_would_catch_mistakes(name):
    """The check above can fail: a misspelt key and a missing head node type are refused."""
    config = raw(name)
    config["idle_timeout_minute"] = config.pop("idle_timeout_minutes")
    with pytest.raises(Exception, match="idle_timeout_minute"):
        validate(config)
    if name == "cluster.yaml":
        config = raw(name)
        config["head_node_type"] = "no_such_type"
        with pytest.raises(ValueError, match="head_node_type"):
            validate(config)


@pytest.mark.parametrize("name", CLUSTERS)
def test_security_and_sync(name):
    config = raw(name)
    head, workers = config["head_start_ray_commands"], config["worker_start_ray_commands"]
    starts = [c for c in head + workers if "ray start" in c]
    assert len(starts) == 2
    for command in starts:
        assert "RAY_AUTH_MODE=token" in command  # token authentication on every node
    assert "--dashboard-host=127.0.0.1" in " ".join(head)
    assert "0.0.0.0" not in yaml.safe_dump(config)
    mounts = config["file_mounts"]
    assert mounts["~/pairtune"] == "."  # the project on every node
    assert mounts["~/.ray/auth_token"] == "~/.ray/auth_token"  # the same token everywhere
    assert config["idle_timeout_minutes"] > 0
    setup = " ".join(config["setup_commands"])
    assert 'pip install -e "$HOME/pairtune[minilm]"' in setup.replace("--user ", "")
    ci_torch = re.search(r'"torch==([\d.]+)"', (ROOT / ".ci" / "install").read_text()).group(1)
    assert f'"torch=={ci_torch}"' in setup


def test_aws_head_runs_no_trials_and_gpu_workers_autoscale_on_spot():
    config = raw("cluster.yaml")
    types = config["available_node_types"]
    assert types[config["head_node_type"]]["resources"] == {"CPU": 0}
    gpus = {name: t["resources"].get("GPU", 0) for name, t in types.items() if name != config["head_node_type"]}
    assert 1 in gpus.values() and max(gpus.values()) > 1  # a one-GPU and a multi-GPU type
    for name in gpus:
        assert types[name]["min_workers"] == 0 and types[name]["max_workers"] > 0
        assert types[name]["node_config"]["InstanceMarketOptions"]["MarketType"] == "spot"
        assert types[name]["resources"]["CPU"] > 0
    # The image's Ray is the Ray pairtune pins and runs here; its Python is one pairtune supports.
    image = config["docker"]["image"]
    version, python = re.fullmatch(r"rayproject/ray:([\d.]+)-(py3\d+)-gpu", image).groups()
    assert version == ray.__version__
    assert python in ("py310", "py311", "py312")
    pin = re.search(r'"ray\[default,tune\]>=([\d.]+),<', (ROOT / "pyproject.toml").read_text()).group(1)
    assert ray.__version__.startswith(pin)
    assert "--env=RAY_AUTH_MODE=token" in config["docker"]["run_options"]


def test_onprem_head_runs_no_trials():
    config = raw("cluster-onprem.yaml")
    assert config["provider"]["type"] == "local" and config["provider"]["worker_ips"]
    assert "--num-cpus=0" in " ".join(config["head_start_ray_commands"])


def test_cluster_search_config_stores_results_on_s3():
    cfg = load_config(ROOT / "configs" / "jigsaw_cluster.yaml")
    assert cfg.search.storage_path.startswith("s3://")
    assert cfg.search.gpus_per_trial == 1
