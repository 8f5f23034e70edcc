"""Progress wherever a person waits (model/progress.py): `pairtune train` shows a bar with the fold,
the epoch, the rate and the time left on a terminal, and plain lines in a log; `lr-find` too."""

import fcntl
import logging
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import time

import pytest
import yaml

from search.cli.main import main


@pytest.fixture
def config_path(tmp_path, tiny_backbone, ruddit_pairs):
    raw = {
        "data": {"pairs": str(ruddit_pairs), "max_votes": 600, "folds": 4, "fold": 2, "max_length": 32},
        "model": {"backbone": tiny_backbone},
        "train": {"epochs": 2, "batch_size": 32, "lr": 1e-3},
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def progress_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "pairtune.progress"]


def test_train_in_a_log_prints_plain_progress_lines(config_path, tmp_path, caplog):
    """Output that is not a terminal (this test's, a job's log, CI): a line at each epoch's end (and
    every 30 s), naming the fold, the epoch, the steps done of all, the rate and the time left."""
    caplog.set_level(logging.INFO, logger="pairtune.progress")
    assert main(["train", str(config_path), "--out", str(tmp_path / "model")]) == 0
    lines = progress_lines(caplog)
    assert len(lines) == 2, lines  # two epochs, each shorter than 30 s
    first = re.fullmatch(r"fold 2, epoch 1/2: step (\d+)/(\d+) \(50%\), [\d.]+ steps/s, about \d+m\d\ds left \(epoch done\)", lines[0])
    assert first, lines[0]
    assert 2 * int(first.group(1)) == int(first.group(2))
    assert re.fullmatch(r"fold 2, epoch 2/2: step (\d+)/\1 \(100%\), [\d.]+ steps/s \(epoch done\)", lines[1]), lines[1]


def test_lr_find_in_a_log_counts_its_range_test_steps(config_path, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="pairtune.progress")
    assert main(["lr-find", str(config_path), "--steps", "20"]) == 0
    lines = progress_lines(caplog)
    assert lines and all(re.match(r"lr-find: step \d+/20 ", x) for x in lines), lines


def test_trials_and_quiet_fits_show_no_progress(config_path, caplog):
    """fit without a progress label (every trial of a search) logs no progress and shows no bar."""
    from model.train import fit
    from search.config.load import load_config
    from search.tune.prepare import prepare_data

    caplog.set_level(logging.INFO, logger="pairtune.progress")
    cfg = load_config(config_path)
    module, _ = fit(cfg.model, cfg.train, prepare_data(cfg).fold_inputs(cfg.model.backbone, cfg.data.lowercase),
                    cfg.data.max_length)
    assert not progress_lines(caplog)
    assert module.trainer.progress_bar_callback is None


def read_terminal(args: list[str], timeout: float = 300) -> str:
    """Run a command with a pseudo-terminal as its stdout and stderr, as in a terminal window; what it showed."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))  # 30 rows, 120 columns, as a window
    proc = subprocess.Popen(args, stdout=slave, stderr=slave, stdin=subprocess.DEVNULL, close_fds=True)
    os.close(slave)
    shown, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the command ended and closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    proc.wait(timeout=30)
    os.close(master)
    assert proc.returncode == 0, shown.decode(errors="replace")[-3000:]
    return shown.decode(errors="replace")


@pytest.mark.slow  # a fresh `pairtune train` process
def test_train_on_a_terminal_shows_a_bar_with_fold_epoch_rate_and_time_left(config_path, tmp_path):
    shown = read_terminal([sys.executable, "-m", "search.cli", "train", str(config_path), "--out", str(tmp_path / "m")])
    for epoch in (1, 2):
        # tqdm's bar: "fold 2, epoch 1/2: 100%|#####| 15/15 [00:01<00:00, 9.8it/s, ...]"
        assert re.search(rf"fold 2, epoch {epoch}/2: +100%\|.*\| (\d+)/\1 \[[\d:]+<[\d:]+, +[\d.]+it/s", shown), shown[-3000:]
    assert "pairtune.progress" not in shown and "steps/s" not in shown  # the bar, not the log lines
