"""Config validation: every shipped config loads; problems are all reported, naming file and key."""

from pathlib import Path

import pytest
import yaml

from search.config.load import load_config
from search.config.parse import ConfigError, parse_config, with_params
from search.config.space import searched_dimensions

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml")) + sorted((ROOT / "benchmarks").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[f"{p.parent.name}/{p.name}" for p in CONFIGS])
def test_every_shipped_config_loads(path):
    cfg = load_config(path)
    assert cfg.search.num_samples >= 1
    assert cfg.source == str(path)
    first_line = path.read_text().splitlines()[0]
    assert first_line.startswith(("# pairtune ", "# python benchmarks/")), "each config starts with the command that runs it"


def test_shipped_configs_cover_quickstart_and_jigsaw():
    names = {p.stem for p in CONFIGS if p.parent.name == "configs"}
    assert {"quickstart", "jigsaw"} <= names
    jigsaw = load_config(ROOT / "configs" / "jigsaw.yaml")
    assert jigsaw.model.backbone == "roberta-base" and jigsaw.search.gpus_per_trial > 0
    first = jigsaw.search.points_to_evaluate[0]
    assert first["train.lr"] == pytest.approx(1e-4) and first["train.margin"] == pytest.approx(0.5)


def problems_of(raw, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    for line in err.value.problems:
        assert line.startswith(f"{path}: "), line
    return "\n".join(err.value.problems)


def test_all_problems_are_reported_together(tmp_path):
    text = problems_of(
        {
            "data": {"folds": 1, "pairz": "x.csv"},
            "model": {"dropout": 1.5},
            "train": {"lr": -1, "batch_size": "big", "precision": "fp8"},
            "serch": {},
        },
        tmp_path,
    )
    for expected in [
        "data.folds: must be at least 2",
        "data.pairz: unknown key; did you mean 'data.pairs'?",
        "model.dropout: must be in [0, 1)",
        "train.batch_size: must be an integer, got 'big'",
        "serch: unknown section; did you mean 'search'?",
        "train.lr: must be positive, got -1",
        "train.precision: must be one of",
    ]:
        assert expected in text
    assert len(text.splitlines()) == 7


@pytest.mark.parametrize(
    "space, expected",
    [
        ({"train.lr": {"uniform": [1e-3, 1e-5]}}, "search.space.train.lr: low 0.001 is greater than high 1e-05"),
        ({"train.lr": {"loguniform": [0, 1e-3]}}, "search.space.train.lr: a log range must be above 0"),
        ({"train.batch_size": {"choice": []}}, "choice needs a non-empty list"),
        ({"train.lr": {"uniform": [-1e-3, 1e-3]}}, "search.space.train.lr: value -0.001: must be positive"),
        ({"train.lrr": {"uniform": [0, 1]}}, "search.space.train.lrr: not a searchable key"),
        ({"model.dropout": {"normal": [0, 1]}}, "expected one of"),
        ({"model.backbone": {"uniform": [0, 1]}}, "changes tokenisation"),
        ({"train.epochs": {"int": [1.5, 3]}}, "bounds must be integers"),
    ],
)
def test_bad_search_spaces(tmp_path, space, expected):
    assert expected in problems_of({"search": {"space": space}}, tmp_path)


def test_points_to_evaluate_must_use_searched_keys(tmp_path):
    raw = {"search": {"space": {"train.lr": {"loguniform": [1e-5, 1e-3]}}, "points_to_evaluate": [{"train.margin": 0.5}]}}
    assert "search.points_to_evaluate[0].train.margin: not a key of search.space" in problems_of(raw, tmp_path)


def test_yaml_exponent_without_dot_is_a_number(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  lr: 1e-4\nsearch:\n  space:\n    train.lr: {loguniform: [1e-5, 1e-3]}\n")
    cfg = load_config(path)
    assert cfg.train.lr == pytest.approx(1e-4)
    assert searched_dimensions(cfg)[0].low == pytest.approx(1e-5)


def test_set_overrides_and_errors_name_them(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  lr: 1.0e-4\n")
    cfg = load_config(path, ["train.lr=3e-4", "search.num_samples=2", "search.space.train.margin={uniform: [0.1, 1.0]}"])
    assert cfg.train.lr == pytest.approx(3e-4) and cfg.search.num_samples == 2
    assert searched_dimensions(cfg)[0].key == "train.margin"
    with pytest.raises(ConfigError, match=r"\(with --set\): train.epochs: must be positive"):
        load_config(path, ["train.epochs=0"])
    with pytest.raises(ConfigError, match="expected section.key=value"):
        load_config(path, ["lr"])


def test_not_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: not valid YAML \(line"):
        load_config(bad)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "none.yaml")


def test_with_params_fixes_every_value_and_round_trips(tmp_path):
    cfg = load_config(ROOT / "configs" / "quickstart.yaml")
    fixed = with_params(cfg, {"train.lr": 2e-5, "model.dropout": 0.05, "train.batch_size": 16})
    assert fixed.train.lr == 2e-5 and fixed.model.dropout == 0.05 and fixed.train.batch_size == 16
    assert fixed.search.space == {} and fixed.search.points_to_evaluate == []
    path = tmp_path / "best.yaml"
    path.write_text(fixed.to_yaml())
    again = load_config(path)
    assert again.to_dict() == fixed.to_dict()


def test_parse_config_defaults():
    cfg = parse_config({}, "mem")
    assert cfg.train.margin == 0.5 and cfg.data.pairs == "demo" and cfg.model.backbone == "minilm"


def test_fixed_values_in_the_space_reach_every_trial_and_the_scheduler(tmp_path):
    """A plain value under search.space is fixed for the whole search: the sections, each trial's config
    (with_params), ASHA's max_t and the exported best config all see it, not the section's own value."""
    from search.tune.scheduler import asha_milestones, make_scheduler

    raw = {
        "model": {"dropout": 0.1, "backbone": "minilm"},
        "train": {"epochs": 3},
        "search": {"space": {"model.dropout": 0.27, "train.epochs": 2, "train.lr": {"loguniform": [1e-5, 1e-3]}},
                   "storage_path": str(tmp_path)},
    }
    cfg = parse_config(raw, "fixed.yaml")
    assert cfg.model.dropout == 0.27 and cfg.train.epochs == 2
    trial = with_params(cfg, {"train.lr": 3e-4})
    assert trial.model.dropout == 0.27 and trial.train.epochs == 2 and trial.train.lr == 3e-4
    assert [d.key for d in searched_dimensions(cfg)] == ["train.lr"]
    assert make_scheduler(cfg)._max_t == 2 and asha_milestones(cfg)[-1] <= 2
    best = tmp_path / "best.yaml"
    best.write_text(trial.to_yaml())
    assert yaml.safe_load(best.read_text())["model"]["dropout"] == 0.27


def test_a_fixed_value_breaking_a_rule_is_reported_with_the_others(tmp_path):
    raw = {"data": {"format": "pairs"}, "train": {"lr": -1},
           "search": {"space": {"train.loss": "mse", "model.dropout": 2.0}}}
    text = problems_of(raw, tmp_path)
    assert "train.lr: must be positive" in text
    assert "search.space.model.dropout" in text
    assert "train.loss: mse regresses" in text  # a cross-section rule, reported with the rest


def test_set_values_that_are_not_yaml_or_missing_are_all_reported():
    from search.config.load import parse_set

    with pytest.raises(ConfigError) as err:
        parse_set(["train.lr=[1,2", "data.max_votes=", "train.margin= ", "train.epochs=3"])
    problems = err.value.problems
    assert len(problems) == 3, problems
    assert problems[0].startswith("--set train.lr=[1,2: the value is not valid YAML")
    assert problems[1] == "--set data.max_votes=: no value; write data.max_votes=null for null"
    assert problems[2].startswith("--set train.margin= : no value; write train.margin=null")
    assert parse_set(["data.max_votes=null", "train.lr=0.001"]) == {"data.max_votes": None, "train.lr": 0.001}


def test_a_directory_is_not_a_config_file(tmp_path):
    from search.config.load import read_yaml
    from search.runs.layout import not_a_config

    with pytest.raises(ConfigError, match=f"^{tmp_path}: is a directory, expected a YAML config file"):
        read_yaml(tmp_path)
    assert not_a_config(tmp_path) is None
    (tmp_path / "pairtune_config.yaml").write_text("search: {name: x}\n")
    assert not_a_config(tmp_path).endswith(f"did you mean {tmp_path / 'export' / 'best.yaml'}?")
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.pt").write_bytes(b"")
    (model / "config.yaml").write_text("{}\n")
    assert not_a_config(model) == f"{model}: is a model directory, not a config file; the config that trained it is {model / 'config.yaml'}"
