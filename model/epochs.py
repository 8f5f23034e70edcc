"""When a run steps and validates, counted in epochs: steps per epoch, and the epochs at which `fit`
(model/train.py) reports. Light (no Lightning): `pairtune check` and a search's driver ask it before
anything trains."""

from __future__ import annotations

import math

from data.loaders import FoldInputs, sharded_batch_count
from model.config import TrainConfig
from model.losses import POINTWISE_LOSSES


def steps_per_epoch(n_train_items: int, cfg: TrainConfig, world: int = 1) -> int:
    """Optimizer steps per epoch over n training votes (or texts, for a pointwise loss), with `world`
    data-parallel processes sharing each batch (see data.loaders.ShardedBatches)."""
    batches = sharded_batch_count(n_train_items, cfg.batch_size, world)
    return max(1, math.ceil(batches / cfg.accumulate_grad_batches))


def train_items(data: FoldInputs, cfg: TrainConfig) -> int:
    """What an epoch goes over: the training votes, or the training texts for a pointwise loss."""
    return len(data.train_texts) if cfg.loss in POINTWISE_LOSSES else len(data.train_less)


def val_check_interval(batches: int, cfg: TrainConfig) -> float:
    """Lightning's val_check_interval for `fit`: validate every val_every_n_steps optimizer steps, as a
    fraction of an epoch of `batches` batches (1.0: once per epoch)."""
    if not cfg.val_every_n_steps:
        return 1.0
    return min(1.0, cfg.val_every_n_steps * cfg.accumulate_grad_batches / batches)


def validation_epochs(n_train_items: int, cfg: TrainConfig, world: int = 1) -> list[float]:
    """The epochs (as each result's `epoch`) at which `fit` validates and reports: every
    val_every_n_steps optimizer steps counted from each epoch's start, and at each epoch's end.
    Lightning turns fit's fractional val_check_interval into whole batches as below."""
    batches = sharded_batch_count(n_train_items, cfg.batch_size, world)
    per_epoch = steps_per_epoch(n_train_items, cfg, world)
    every = max(1, int(batches * val_check_interval(batches, cfg)))
    out = []
    for epoch in range(cfg.epochs):
        out += [round(epoch + (b // cfg.accumulate_grad_batches) / per_epoch, 4) for b in range(every, batches, every)]
        out.append(float(epoch + 1))
    return out
