"""Configs are read with a safe YAML loader; checkpoints load as weights only; the local Ray pairtune
starts serves its dashboard on loopback, with a token (and, checked on the same start, keeps no idle
worker processes)."""

import os
import pickle

import pytest
import torch

from model.checkpoint import WEIGHTS, CheckpointError, load_checkpoint, save_checkpoint
from model.config import ModelConfig, TrainConfig
from model.ranker import PairwiseRanker
from search.config.load import load_config
from search.config.parse import ConfigError, parse_config


def test_yaml_tags_that_run_code_are_refused(tmp_path):
    path = tmp_path / "evil.yaml"
    marker = tmp_path / "ran"
    path.write_text(f'train: !!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(ConfigError, match="evil.yaml: not valid YAML"):
        load_config(path)
    assert not marker.exists()


class Boom:
    def __reduce__(self):
        return (exec, ("raise SystemExit('pickled code ran')",))


def test_checkpoints_round_trip_and_refuse_pickled_code(tmp_path, tiny_backbone):
    cfg = parse_config({"model": {"backbone": tiny_backbone}}, "mem").to_dict()
    module = PairwiseRanker(ModelConfig(backbone=tiny_backbone), TrainConfig(), total_steps=1)
    save_checkpoint(tmp_path / "ok", module, cfg, {"val/agreement": 0.5})
    loaded, config = load_checkpoint(tmp_path / "ok")
    assert config["model"]["backbone"] == tiny_backbone
    for name, tensor in module.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor)
    # A checkpoint whose weights file smuggles in a pickled callable is refused, not executed, and the
    # refusal does not pass on torch's advice to retry with weights_only=False.
    save_checkpoint(tmp_path / "evil", module, cfg, {})
    torch.save({"weights": Boom()}, tmp_path / "evil" / WEIGHTS, pickle_protocol=pickle.HIGHEST_PROTOCOL)
    with pytest.raises(CheckpointError, match=f"^{tmp_path / 'evil' / WEIGHTS} is damaged or not a pairtune model") as err:
        load_checkpoint(tmp_path / "evil")
    assert "weights_only" not in str(err.value)


def worker_processes_under(pid: int) -> list[str]:
    """Ray worker processes descended from `pid` (a driver that started Ray: its raylet is a child), by
    command line: `python .../default_worker.py ...` while it starts, `ray::IDLE` once idle."""
    from pathlib import Path

    parent, command = {}, {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            stat = (proc / "stat").read_text()
            parent[int(proc.name)] = int(stat[stat.rfind(")") + 2:].split()[1])
            command[int(proc.name)] = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except (OSError, ValueError):  # ended meanwhile
            pass

    def under(p):
        while p > 1:
            p = parent.get(p, 0)
            if p == pid:
                return True
        return False

    def worker(argv):  # python .../default_worker.py ... (the raylet's own command line names it too)
        return argv[0].startswith("ray::IDLE") or any(a.endswith("default_worker.py") for a in argv[:2])

    return [" ".join(c) for p, c in command.items() if under(p) and worker(c)]


@pytest.mark.slow  # starts a local Ray, or looks at the one earlier tests' searches in this process ran on
def test_local_ray_dashboard_is_loopback_only_and_needs_the_token_and_no_worker_waits_idle(shared_local_ray):
    import socket
    import urllib.error
    import urllib.request
    from pathlib import Path

    import ray

    context = shared_local_ray  # what `pairtune search` starts on a single machine (search.tune.tuner.start_ray)
    host, port = context.dashboard_url.replace("http://", "").split(":")
    assert host == "127.0.0.1"
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/api/jobs/", timeout=10)
    assert denied.value.code == 401  # token authentication is on
    token = (Path.home() / ".ray" / "auth_token").read_text().strip()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/jobs/", headers={"Authorization": f"Bearer {token}"})
    assert urllib.request.urlopen(request, timeout=10).status == 200
    # Not reachable on the machine's network address (the one Ray's nodes use).
    other = ray.util.get_node_ip_address()
    assert not other.startswith("127."), other
    with pytest.raises(OSError):
        socket.create_connection((other, int(port)), timeout=3).close()
    # No idle worker process started in advance (Tune never runs a trial in one: LOCAL_RAY_CONFIG), nor
    # left waiting by the searches earlier tests ran on it.
    assert worker_processes_under(os.getpid()) == []


def test_secrets_have_no_place_in_configs(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("search:\n  wandb_api_key: abc123\n")
    with pytest.raises(ConfigError, match="search.wandb_api_key: unknown key") as err:
        load_config(path)
    assert "abc123" not in str(err.value)
