"""`pairtune lr-find`: Lightning's learning-rate range test on a config's training fold.

The learning rate grows exponentially from min_lr to max_lr over num_training optimizer steps while
the (smoothed) training loss is recorded; the suggestion is Lightning's: the rate where the loss
falls fastest. With `--write OUT.yaml` the config is written back with

    search.space.train.lr: {loguniform: [suggestion / 10, suggestion * 3]}

a decade below the steepest descent (where the loss still falls steadily) up to a factor of 3 above
it (beyond that the range test's loss usually turns up). Everything else in the file is kept.
"""

from __future__ import annotations

import logging
import math
import sys
import tempfile
import warnings
from pathlib import Path

import yaml

from data.loaders import train_loader
from model.epochs import steps_per_epoch
from model.precision import cuda_usable, resolve_precision
from model.progress import ProgressLines
from model.ranker import PairwiseRanker
from search.config.load import read_yaml, resolve_paths
from search.config.parse import ConfigError, PairtuneConfig, parse_config, with_params
from search.tune.preflight import preflight
from search.tune.prepare import prepare_data

log = logging.getLogger(__name__)

LOW_FACTOR = 10.0  # the written range: [suggestion / LOW_FACTOR, suggestion * HIGH_FACTOR]
HIGH_FACTOR = 3.0


class _RangeTestRanker(PairwiseRanker):
    """The ranker, except that a non-finite loss (the range test deliberately pushes the rate until
    training diverges) ends the test instead of failing it. Lightning's lr_find replaces the Trainer's
    callbacks with its own (whose bar shows on a terminal), so progress lines for a log are sent from
    the module's hooks."""

    lines = None  # model.progress.ProgressLines, when the output is not a terminal

    def on_train_start(self) -> None:
        if self.lines:
            self.lines.on_train_start(self.trainer, self)

    def on_train_batch_end(self, *args) -> None:
        if self.lines:
            self.lines.on_train_batch_end(self.trainer)

    def on_train_end(self) -> None:
        if self.lines:
            self.lines.on_train_end(self.trainer, self)

    def training_step(self, batch: dict, batch_idx: int):
        try:
            return super().training_step(batch, batch_idx)
        except FloatingPointError:
            self.trainer.should_stop = True
            return None  # Lightning skips the step; the finder records NaN, which its suggestion ignores


def find_lr(cfg: PairtuneConfig, min_lr: float = 1e-7, max_lr: float = 1e-1, num_training: int = 100,
            progress: bool = True) -> dict:
    """Run the range test on cfg's fixed values and training fold; returns the suggestion and the curve."""
    import pytorch_lightning as pl
    from pytorch_lightning.tuner import Tuner

    problems = []
    if not 0 < min_lr < max_lr:
        problems.append(f"--min-lr/--max-lr: need 0 < min_lr < max_lr, got {min_lr:g} and {max_lr:g}")
    if num_training < 5:
        problems.append(f"--steps: need at least 5 steps for a suggestion, got {num_training}")
    if problems:
        raise ConfigError(problems)
    cfg = with_params(cfg, {})
    preflight(cfg)
    on_cuda = cuda_usable()
    precision = resolve_precision(cfg.train.precision, on_cuda)
    prepared = prepare_data(cfg)
    data = prepared.fold_inputs(cfg.model.backbone, cfg.data.lowercase)
    t = cfg.train
    loader = train_loader(data, t.batch_size, cfg.data.max_length, t.seed, t.length_grouping, t.texts_per_forward)
    pl.seed_everything(t.seed, workers=True, verbose=False)
    module = _RangeTestRanker(cfg.model, t, total_steps=num_training)
    if progress and not sys.stdout.isatty():
        module.lines = ProgressLines("lr-find", total_steps=num_training)
    per_epoch = steps_per_epoch(len(data.train_less), t)  # optimizer steps, as fit counts them
    with tempfile.TemporaryDirectory() as root, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*treespec, LeafSpec.*")
        warnings.filterwarnings("ignore", message=".*no `val_dataloader`.*")
        trainer = pl.Trainer(
            accelerator="gpu" if on_cuda else "cpu", devices=1, precision=precision,
            max_epochs=math.ceil(num_training / per_epoch) + 1,  # small data: the test spans epochs
            accumulate_grad_batches=t.accumulate_grad_batches, gradient_clip_val=t.gradient_clip_val,
            num_sanity_val_steps=0, limit_val_batches=0, logger=False, enable_checkpointing=False,
            enable_progress_bar=progress, enable_model_summary=False, default_root_dir=root,
        )
        finder = Tuner(trainer).lr_find(module, train_dataloaders=loader, min_lr=min_lr, max_lr=max_lr,
                                        num_training=num_training, update_attr=False)
    suggestion = finder.suggestion() if finder is not None else None
    lrs, losses = list(finder.results["lr"]), list(finder.results["loss"])
    return {"suggestion": suggestion, "lrs": lrs, "losses": losses, "steps": len(lrs),
            "train_votes": len(data.train_less), "config_lr": t.lr}


def suggested_range(suggestion: float) -> list[float]:
    return [float(f"{suggestion / LOW_FACTOR:.3g}"), float(f"{suggestion * HIGH_FACTOR:.3g}")]


def write_lr_range(config_path: str | Path, out_path: str | Path, suggestion: float) -> tuple[Path, list[str]]:
    """A copy of the config file with search.space.train.lr narrowed around the suggestion; returns
    the path and warnings (first points whose learning rate falls outside the new range)."""
    raw = read_yaml(config_path)
    out_path = Path(out_path).expanduser()
    if out_path.resolve().parent != Path(config_path).resolve().parent:
        resolve_paths(raw, Path(config_path).resolve().parent)  # relative data / backbone paths still resolve
    low, high = suggested_range(suggestion)
    search = raw.setdefault("search", {}) or {}
    raw["search"] = search
    space = search.get("space") or {}
    space["train.lr"] = {"loguniform": [low, high]}
    search["space"] = space
    parse_config(raw, str(out_path))  # the written config must be valid
    notes = []
    for i, point in enumerate(search.get("points_to_evaluate") or []):
        lr = point.get("train.lr") if isinstance(point, dict) else None
        if isinstance(lr, (int, float)) and not low <= lr <= high:
            notes.append(f"search.points_to_evaluate[{i}].train.lr {lr:g} is outside the new range [{low:g}, {high:g}]")
    header = (f"# {Path(config_path).name} with search.space.train.lr narrowed by `pairtune lr-find` "
              f"(suggestion {suggestion:.3g}; range suggestion/{LOW_FACTOR:g} .. suggestion*{HIGH_FACTOR:g})\n")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(header + yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return out_path, notes
