"""Configs are read with a safe YAML loader; checkpoints load as weights only."""

import pickle

import pytest
import torch

from model.checkpoint import WEIGHTS, load_checkpoint, save_checkpoint
from model.config import ModelConfig, TrainConfig
from model.ranker import PairwiseRanker
from search.config import ConfigError, load_config, parse_config


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
    # A checkpoint whose weights file smuggles in a pickled callable is refused, not executed.
    save_checkpoint(tmp_path / "evil", module, cfg, {})
    torch.save({"weights": Boom()}, tmp_path / "evil" / WEIGHTS, pickle_protocol=pickle.HIGHEST_PROTOCOL)
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(tmp_path / "evil")
