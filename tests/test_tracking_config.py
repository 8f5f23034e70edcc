"""search.tracking validation (fast): keys, required project, no credentials, checks before Ray."""

import pytest

from search.config.parse import ConfigError, parse_config
from search.tune.tracking import environment_problems


def problems(tracking):
    with pytest.raises(ConfigError) as err:
        parse_config({"search": {"tracking": tracking}}, "c.yaml")
    return str(err.value)


def test_valid_tracking_parses():
    cfg = parse_config({"search": {"tracking": {"wandb": {"project": "p", "mode": "offline"}, "mlflow": {}}}})
    assert cfg.search.tracking["wandb"]["project"] == "p"


@pytest.mark.parametrize("tracking, message", [
    ({"wandbb": {"project": "p"}}, "c.yaml: search.tracking.wandbb: unknown tracker; expected one of ['wandb', 'mlflow']; did you mean 'wandb'?"),
    ({"wandb": {}}, "c.yaml: search.tracking.wandb.project: required"),
    ({"wandb": {"project": "p", "mode": "later"}}, "c.yaml: search.tracking.wandb.mode: must be one of ['online', 'offline', 'disabled']"),
    ({"wandb": {"project": "p", "api_key": "abc"}}, "search.tracking.wandb.api_key: unknown key"),
    ({"mlflow": {"tracking_token": "abc"}}, "credentials never go in a config"),
    ({"mlflow": {"tags": "x"}}, "c.yaml: search.tracking.mlflow.tags: must be a mapping"),
    ("wandb", "c.yaml: search.tracking: must be a mapping"),
])
def test_bad_tracking_is_named(tracking, message):
    assert message in problems(tracking)


def test_wandb_online_without_credentials_is_refused_before_ray(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    assert any("mode online needs W&B credentials" in p for p in environment_problems({"wandb": {"project": "p"}}))
    assert not [p for p in environment_problems({"wandb": {"project": "p", "mode": "offline"}}) if "credentials" in p]
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert not [p for p in environment_problems({"wandb": {"project": "p"}}) if "credentials" in p]
