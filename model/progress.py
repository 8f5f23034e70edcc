"""Progress wherever a person waits for one model to train (`pairtune train`, `pairtune lr-find`): a
bar with rate and ETA on a terminal, plain periodic lines when the output is not one (a job's logs,
CI, a file). Trials inside a search show none: Ray's trial table is the progress there.
"""

from __future__ import annotations

import logging
import sys
import time

import pytorch_lightning as pl
from pytorch_lightning.callbacks import TQDMProgressBar

log = logging.getLogger("pairtune.progress")


def progress_callbacks(label: str, total_steps: int | None = None, every_s: float = 30.0) -> list[pl.Callback]:
    """What shows progress for `label` (e.g. "fold 2"): the bar on a terminal (Lightning's tqdm bar
    writes to stdout), else a line every `every_s` seconds and at each epoch's end. total_steps: when
    the run ends at a number of steps, not after its epochs (lr-find's range test)."""
    if sys.stdout.isatty():
        return [LabelledBar(label, total_steps is None)]
    return [ProgressLines(label, every_s, total_steps)]


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class LabelledBar(TQDMProgressBar):
    """Lightning's bar (steps, rate, ETA of the epoch), named by what trains and which epoch of how many."""

    def __init__(self, label: str, epochs: bool = True):
        super().__init__()
        self.label, self.epochs = label, epochs

    def on_train_epoch_start(self, trainer: pl.Trainer, *args) -> None:
        super().on_train_epoch_start(trainer, *args)
        epoch = f", epoch {trainer.current_epoch + 1}/{trainer.max_epochs}" if self.epochs else ""
        self.train_progress_bar.set_description(self.label + epoch)


class ProgressLines(pl.Callback):
    """One log line every `every_s` seconds of training and at each epoch's end: epoch, optimizer
    steps done of all, the rate, and the time left at that rate (validation not counted)."""

    def __init__(self, label: str, every_s: float = 30.0, total_steps: int | None = None):
        self.label, self.every_s, self.total_steps = label, every_s, total_steps
        self.started = self.last = 0.0
        self.first_step = 0

    def on_train_start(self, trainer: pl.Trainer, pl_module) -> None:
        self.started = self.last = time.monotonic()
        self.first_step = trainer.global_step  # a resumed run starts part way

    def on_train_batch_end(self, trainer: pl.Trainer, *args) -> None:
        if time.monotonic() - self.last >= self.every_s:
            self._line(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module) -> None:
        if not self.total_steps:  # a run that ends at a number of steps has no meaningful epochs
            self._line(trainer, "epoch done")

    def on_train_end(self, trainer: pl.Trainer, pl_module) -> None:
        if self.total_steps:
            self._line(trainer, "done")

    def _line(self, trainer: pl.Trainer, note: str = "") -> None:
        now = time.monotonic()
        self.last = now
        total = self.total_steps or int(trainer.estimated_stepping_batches)
        done = min(trainer.global_step, total)
        rate = (trainer.global_step - self.first_step) / max(now - self.started, 1e-9)
        left = f", about {_clock((total - done) / rate)} left" if rate > 0 and done < total else ""
        epoch = "" if self.total_steps else f", epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"
        log.info("%s%s: step %d/%d (%.0f%%), %.2f steps/s%s%s", self.label, epoch, done, total,
                 100.0 * done / max(total, 1), rate, left, f" ({note})" if note else "")
