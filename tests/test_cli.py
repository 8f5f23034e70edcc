"""The `pairtune` CLI: help, and user errors reported before Ray starts, without a traceback.

One test runs the real command in a fresh process; the others call the same entry point
(search.cli.main) in this process, which is what `pairtune` runs, without paying for a new
Python importing torch each time (about 10 s on 2 cores)."""

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from search.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[1]


def subcommands() -> list[str]:
    """Every subcommand the parser declares, so a new one gets its --help test without editing this file."""
    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(sub.choices)


COMMANDS = subcommands()


def run_process(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "search.cli", *args], check=False, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("command", COMMANDS)
def test_help(command, run_cli):
    out = run_cli(command, "--help")
    assert out.returncode == 0 and "usage: pairtune " + command in out.stdout
    assert not out.started_ray


def test_top_level_help_lists_every_subcommand(run_cli):
    out = run_cli("--help")
    assert out.returncode == 0 and not out.started_ray
    listed = out.stdout.split("COMMAND")[-1]
    assert [c for c in COMMANDS if f"\n    {c} " not in listed] == []


def write_config(tmp_path, raw):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def assert_user_error(out, *fragments):
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    assert "Started a local Ray instance" not in out.stdout + out.stderr  # nothing expensive ran
    assert not getattr(out, "started_ray", False)  # in-process runs (conftest.run_cli) say so directly
    for fragment in fragments:
        assert fragment in out.stderr, out.stderr
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("pairtune: error: ")]
    assert len(errors) >= len(fragments)


def test_config_problems_are_reported_together(tmp_path):
    """The real command in its own process: exit status 2, every problem listed, no traceback."""
    path = write_config(tmp_path, {"train": {"lr": -1, "epoch": 3}, "search": {"space": {"train.margin": {"uniform": [1, 0]}}}})
    start = time.monotonic()
    out = run_process("search", str(path))
    assert_user_error(out, f"{path}: train.lr: must be positive", f"{path}: train.epoch: unknown key; did you mean 'train.epochs'?",
                      f"{path}: search.space.train.margin: low 1 is greater than high 0")
    assert time.monotonic() - start < 60


def test_bad_data_is_rejected_before_ray_starts(tmp_path, run_cli):
    csv = tmp_path / "votes.csv"
    csv.write_text("less_toxic,more_toxic\na,b\nc,\n")
    path = write_config(tmp_path, {"data": {"pairs": "votes.csv"}})  # relative to the config file
    out = run_cli("search", str(path))
    assert_user_error(out, f"{csv}: row 3: empty text in column 'more_toxic'")


def test_too_few_votes_for_the_folds(tmp_path, run_cli):
    csv = tmp_path / "votes.csv"
    csv.write_text("less_toxic,more_toxic\na,b\n")
    out = run_cli("search", str(write_config(tmp_path, {"data": {"pairs": str(csv)}})))
    assert_user_error(out, f"{csv}: cannot make 5 leak-free folds from 1 votes over 2 texts")


def test_missing_backbone_and_fp16_on_cpu_trials(tmp_path, run_cli):
    path = write_config(tmp_path, {"model": {"backbone": "./no/such/model"}, "train": {"precision": "16-mixed"}})
    out = run_cli("search", str(path))
    assert_user_error(out, "model.backbone: backbone path ./no/such/model does not exist",
                      "train.precision: 16-mixed needs GPU trials but search.gpus_per_trial is 0")


@pytest.mark.parametrize("seconds", ["-5", "0", "nan"])
def test_status_watch_needs_a_positive_interval(seconds, tmp_path, run_cli):
    """--watch -5 printed the board once, then died in time.sleep with a traceback while a search ran."""
    out = run_cli("status", tmp_path, "--watch", seconds)
    assert out.returncode == 2 and f"argument --watch: must be more than 0 seconds, got {seconds}" in out.stderr


def test_train_refuses_an_out_it_cannot_write_before_it_reads_the_data(tmp_path, tiny_backbone, run_cli, monkeypatch):
    """--out under a file failed at the first save, after an epoch of training, with a traceback."""
    from search.recipes import train

    monkeypatch.setattr(train, "prepare_data", lambda *a, **k: pytest.fail("read the data before checking --out"))
    blocker = tmp_path / "model.pt"
    blocker.write_text("a file")
    path = write_config(tmp_path, {"model": {"backbone": tiny_backbone}})
    for out in (blocker, blocker / "sub"):
        result = run_cli("train", str(path), "--out", str(out))
        assert_user_error(result, f"--out {out}: cannot create it and write there ({blocker} is a file, not a directory)")
    result = run_cli("train", str(path), "--folds", "all", "--out", str(blocker))
    assert_user_error(result, f"--out {blocker}: cannot create it and write there")


def test_train_rejects_fp16_without_gpu(tmp_path, tiny_backbone, run_cli):
    path = write_config(tmp_path, {"model": {"backbone": tiny_backbone}, "train": {"precision": "16-mixed"}})
    out = run_cli("train", str(path))
    assert_user_error(out, "16-mixed")


# Every command that reads a run, with the arguments it needs besides the run.
RUN_READERS = {"resume": [], "extend": ["--trials", "1"], "export": [], "report": [], "status": [],
               "ensemble": ["--out", "ens"], "dashboard": ["--port", "0"]}


@pytest.mark.parametrize("command", RUN_READERS)
def test_a_run_that_is_missing_or_not_a_run_is_said_so_the_same_way_by_every_command(command, tmp_path, run_cli):
    extra = [str(tmp_path / a) if a == "ens" else a for a in RUN_READERS[command]]
    out = run_cli(command, tmp_path / "no such run", *extra)
    assert_user_error(out, f"pairtune: error: {tmp_path / 'no such run'}: no such run directory")
    out = run_cli(command, tmp_path, *extra)
    assert_user_error(out, f"pairtune: error: {tmp_path}: not a pairtune run directory (no pairtune_config.yaml)")


@pytest.mark.parametrize("command", ["check", "search", "train", "baseline", "lr-find", "submit"])
def test_a_run_directory_given_for_a_config(command, tmp_path, run_cli):
    run = tmp_path / "my run"
    run.mkdir()
    (run / "pairtune_config.yaml").write_text("search: {name: x}\n")
    out = run_cli(command, run)
    assert_user_error(out, f"{run}: is a search run directory, not a config file; did you mean {run / 'export' / 'best.yaml'}?")


def test_a_plain_directory_given_for_a_config(tmp_path, run_cli):
    out = run_cli("train", tmp_path)
    assert_user_error(out, f"{tmp_path}: is a directory, expected a YAML config file")


def test_printed_commands_quote_paths_with_spaces(tmp_path, capsys):
    import shlex
    from types import SimpleNamespace

    import pandas as pd

    from search.cli.reading import print_export

    out_dir = tmp_path / "my runs" / "export"
    best = out_dir / "best.yaml"
    print_export(SimpleNamespace(leaderboard=pd.DataFrame({"trial_id": ["t1"], "best_agreement": [0.7], "outcome": ["finished"]}),
                                  summary={"ended_by": "num_samples", "metric": "val/agreement"}, best_agreement=0.7,
                                  baseline=None, best_yaml=str(best), best_checkpoint=str(tmp_path / "ck"), out_dir=str(out_dir)))
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("train it with:"))
    assert shlex.split(line.split(":", 1)[1]) == ["pairtune", "train", str(best)], line


def test_search_into_an_unwritable_storage_path_fails_before_ray_starts(tmp_path, ruddit_pairs, run_cli):
    """A storage_path under a regular file (read-only directories do not stop root, who runs the tests)."""
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a directory")
    path = write_config(tmp_path, {"data": {"pairs": str(ruddit_pairs)}, "search": {"storage_path": str(blocker / "sub")}})
    out = run_cli("search", str(path))
    assert_user_error(out, f"{path}: search.storage_path: cannot create {blocker / 'sub'}")


def test_check_says_when_validations_miss_ashas_rungs(run_cli):
    """ASHA judges a trial at its first result at or past a rung: `pairtune check` (and `search`, before it
    starts) names the rungs a trial's validations would reach late. The shipped quickstart reports on its
    rungs (0.5 and 1.5 epochs); 900 training votes validated every 14 steps miss both."""
    config = ROOT / "configs" / "quickstart.yaml"
    shipped = run_cli("check", config)
    assert shipped.returncode == 0, shipped.stderr[-2000:]
    assert "warning" not in shipped.stdout
    late = run_cli("check", config, "--set", "data.max_train_votes=900", "--set", "train.val_every_n_steps=14")
    assert late.returncode == 0, late.stderr[-2000:]
    warnings = [x for x in late.stdout.splitlines() if x.startswith("warning: ASHA's rung")]
    assert len(warnings) == 4, late.stdout[-3000:]  # two rungs, two batch sizes
    assert ("warning: ASHA's rung at 0.5 epochs comes late for trials with train.batch_size 16: they validate at epochs "
            "0.2456, 0.4912, 0.7368, 0.9825, ... (900 training votes, train.val_every_n_steps 14), so ASHA first judges "
            "them at epoch 0.7368") in late.stdout
    assert "at 1.5 epochs comes late for trials with train.batch_size 32" in late.stdout and "epoch 1.9655" in late.stdout
