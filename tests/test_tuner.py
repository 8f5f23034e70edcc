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
