"""Training one configuration on one fold: shared by `pairtune train` and by every search trial."""

from __future__ import annotations

import logging
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytorch_lightning as pl
import torch

from data.loaders import (
    FoldInputs,
    scored_text_loader,
    text_loader,
    train_loader,
)
from model.config import ModelConfig, TrainConfig
from model.epochs import steps_per_epoch, train_items, val_check_interval
from model.losses import POINTWISE_LOSSES
from model.metrics import AGREEMENT, METRIC_MODES, VAL_LOSS
from model.precision import cuda_usable, resolve_precision
from model.progress import progress_callbacks
from model.ranker import PairwiseRanker

log = logging.getLogger(__name__)


@dataclass
class ValidationResult:
    """What one validation produced. epoch is fractional when validating inside an epoch."""

    agreement: float
    val_loss: float
    epoch: float
    step: int
    is_best: bool
    best_agreement: float
    final: bool  # no more training follows (last step, or early stopping fired)
    startup_s: float  # from the start of the run (e.g. of the trial) to the first optimizer step
    monitor: str = AGREEMENT  # the metric is_best and best_value follow
    value: float = math.nan  # this validation's value of `monitor`
    best_value: float = math.nan
    metrics: dict = field(default_factory=dict)  # every val/* metric of this validation
    scores: np.ndarray | None = None  # (N,) float32, each validation text's score, in FoldInputs.val_texts order
    spent: dict = field(default_factory=dict)  # seconds per part of the run so far (ValidationCallback.spent)


@dataclass
class Distributed:
    """A process of a data-parallel run: its rank among `world`, and the Lightning strategy and
    plugins that join the process group (built by search/tune/ddp.py, so this module needs no Ray)."""

    rank: int
    world: int
    strategy: object
    plugins: list = field(default_factory=list)


SPENT = ("startup_s", "train_s", "val_s", "report_s")  # the parts of a run's wall time, in order


class ValidationCallback(pl.Callback):
    """Hands every validation result to `on_result` (save a checkpoint, report to Tune, ...), and keeps
    the run's wall time in parts (`spent`, seconds, SPENT): start-up (`imports_s` given by the caller,
    then from `started_at` to the first optimizer step), training, validation, and on_result's own
    time (reporting, checkpoints). A resumed run's parts go on from its checkpoint's; what a try spent
    after its last checkpoint is not counted."""

    def __init__(self, steps_per_epoch: int, on_result: Callable[[ValidationResult, PairwiseRanker], None], started_at: float,
                 monitor: str = AGREEMENT, imports_s: float = 0.0):
        self.steps_per_epoch, self.on_result, self.started_at = steps_per_epoch, on_result, started_at
        self.monitor, self.sign = monitor, 1.0 if METRIC_MODES[monitor] == "max" else -1.0
        self.best = -math.inf  # best of sign * monitor: higher is always better here
        self.best_agreement = -math.inf
        self.history: list[ValidationResult] = []
        self.startup_s = math.nan
        self.imports_s = imports_s
        self.spent = dict.fromkeys(SPENT, 0.0)
        self._since: float | None = None  # when the part being timed began (None before the first step)

    def state_dict(self) -> dict:  # saved in Lightning checkpoints, so a resumed run knows its best and its time
        return {"best": self.best, "best_agreement": self.best_agreement, "spent": dict(self.spent)}

    def load_state_dict(self, state: dict) -> None:
        self.best = state["best"]
        self.best_agreement = state.get("best_agreement", self.best if self.monitor == AGREEMENT else -math.inf)
        self.spent.update(state.get("spent", {}))

    def _spend(self, part: str) -> None:
        now = time.perf_counter()
        if self._since is not None:
            self.spent[part] += now - self._since
        self._since = now

    def _started(self) -> None:
        """The run's start-up ends (at its first optimizer step, or a resumed run's first validation)."""
        if math.isnan(self.startup_s):
            self.startup_s = time.perf_counter() - self.started_at
            self.spent["startup_s"] += self.imports_s + self.startup_s
            self._since = self.started_at + self.startup_s

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= 1:
            self._started()

    def on_validation_start(self, trainer: pl.Trainer, module: PairwiseRanker) -> None:
        if not trainer.sanity_checking:
            self._started()
            self._spend("train_s")

    def on_validation_end(self, trainer: pl.Trainer, module: PairwiseRanker) -> None:
        if trainer.sanity_checking:
            return
        self._spend("val_s")
        metrics = trainer.callback_metrics
        agreement = float(metrics[AGREEMENT])
        value = float(metrics[self.monitor])
        is_best = self.sign * value > self.best
        self.best = max(self.best, self.sign * value)
        self.best_agreement = max(self.best_agreement, agreement)
        result = ValidationResult(
            agreement=agreement,
            val_loss=float(metrics[VAL_LOSS]),
            epoch=round(trainer.global_step / self.steps_per_epoch, 4),
            step=trainer.global_step,
            is_best=is_best,
            best_agreement=self.best_agreement,
            final=trainer.should_stop or trainer.global_step >= trainer.estimated_stepping_batches,
            startup_s=round(self.startup_s, 3),
            monitor=self.monitor,
            value=value,
            best_value=self.sign * self.best,
            metrics={k: float(v) for k, v in metrics.items() if k.startswith("val/")},
            scores=module.last_val_scores,
            spent={k: round(v, 3) for k, v in self.spent.items()},
        )
        self.history.append(result)
        self.on_result(result, module)
        self._spend("report_s")


class ResumeBatches(pl.Callback):
    """A run resumed inside an epoch (a retried or resumed trial) continues that epoch's batches where
    it stopped: Lightning restarts the epoch's data loader from its first batch, so the loader's batch
    sampler (data.loaders.EpochBatches) is told how many of them were already trained."""

    def on_train_start(self, trainer: pl.Trainer, module) -> None:
        loop = trainer.fit_loop
        if not loop.restarted_mid_epoch:
            return
        done = loop.epoch_loop.batch_progress.current.processed  # batches of this epoch trained before the save
        if done >= trainer.num_training_batches:  # saved at the epoch's last batch: the next epoch starts afresh
            return
        trainer.train_dataloader.batch_sampler.set_epoch(loop.epoch_progress.current.processed, skip=done)


def set_threads(cpus: float | None) -> None:
    """Intra-op threads = the CPUs this process was given (Ray trials get a share of the machine)."""
    if cpus:
        torch.set_num_threads(max(1, int(cpus)))


def _validate_at_epoch_end_too(trainer: pl.Trainer) -> None:
    """With a fractional val_check_interval Lightning validates every N batches but skips the epoch's
    last batch unless N divides the epoch; ASHA's rungs and the best-epoch checkpoint need that one."""
    loop = trainer.fit_loop.epoch_loop
    should_check = loop._should_check_val_fx

    def check(data_fetcher) -> bool:
        return should_check(data_fetcher) or (loop.batch_progress.is_last_batch and loop._should_check_val_epoch())

    loop._should_check_val_fx = check


def fit(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    data: FoldInputs,
    max_length: int,
    on_result: Callable[[ValidationResult, PairwiseRanker], None] = lambda r, m: None,
    root_dir: str | None = None,
    logger=False,
    progress: str | None = None,
    use_gpu: bool | None = None,
    started_at: float | None = None,
    resume_from: str | None = None,
    monitor: str = AGREEMENT,
    distributed: Distributed | None = None,
    imports_s: float = 0.0,
) -> tuple[PairwiseRanker, ValidationCallback]:
    """Train on data's training votes, validating (and calling on_result) at least once per epoch.
    With no validation votes (a final model on all votes) it trains for train_cfg.epochs and never
    validates, so on_result is never called.

    monitor: the validation metric that decides the best epoch and early stopping (search.metric).
    progress: what to call this run in its progress (a bar on a terminal, periodic lines otherwise:
    model/progress.py), e.g. "fold 2"; None (trials in a search) shows none.

    started_at: time.perf_counter() when the run began (default: now), for the start-up time.
    imports_s: seconds this process spent importing before `started_at`, counted in the start-up.
    resume_from: a Lightning checkpoint (see save_resume_state) to continue from.
    distributed: this process's place in a data-parallel run (search/tune/ddp.py): every process calls
    fit; each trains on its share of every batch and scores its share of the validation texts.
    """
    started_at = time.perf_counter() if started_at is None else started_at
    pl.seed_everything(train_cfg.seed, workers=True, verbose=False)
    on_cuda = cuda_usable() if use_gpu is None else (use_gpu and cuda_usable())
    precision = resolve_precision(train_cfg.precision, on_cuda)
    pointwise = train_cfg.loss in POINTWISE_LOSSES
    make_loader = scored_text_loader if pointwise else train_loader
    rank, world = (distributed.rank, distributed.world) if distributed else (0, 1)
    train_dl = make_loader(
        data, train_cfg.batch_size, max_length, train_cfg.seed, train_cfg.length_grouping, train_cfg.texts_per_forward,
        rank=rank, world=world,
    )
    validate = len(data.val_less) > 0
    texts, val_less, val_more = data.val_texts()
    val_dl = text_loader(data.tokens, texts, train_cfg.eval_batch_size, max_length, rank, world) if validate else None
    per_epoch = steps_per_epoch(train_items(data, train_cfg), train_cfg, world)
    module = PairwiseRanker(model_cfg, train_cfg, total_steps=per_epoch * train_cfg.epochs)
    module.set_validation_votes(len(texts), val_less, val_more, None if data.scores is None else data.scores[texts])
    tracker = ValidationCallback(per_epoch, on_result, started_at, monitor, imports_s)
    val_interval = val_check_interval(len(train_dl), train_cfg) if validate else 1.0
    shown = progress_callbacks(progress) if progress else []
    trainer = _trainer(train_cfg, on_cuda, precision, distributed, _callbacks(train_cfg, tracker, validate, monitor) + shown,
                       val_interval, validate, len(train_dl), logger=logger,
                       progress=any(isinstance(c, pl.callbacks.ProgressBar) for c in shown), root_dir=root_dir)
    with warnings.catch_warnings():
        # Single-process loaders are deliberate (see data.loaders.train_loader).
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*treespec, LeafSpec.*")  # Lightning vs torch 2.13
        warnings.filterwarnings("ignore", message=".*no `val_dataloader`.*")  # a model on all votes
        warnings.filterwarnings("ignore", message=".*sync_dist=True.*")  # validation metrics are all-reduced
        trainer.fit(module, train_dataloaders=train_dl, val_dataloaders=val_dl, ckpt_path=resume_from)
    return module, tracker


def _callbacks(train_cfg: TrainConfig, tracker: ValidationCallback, validate: bool, monitor: str) -> list[pl.Callback]:
    callbacks: list[pl.Callback] = [ResumeBatches()]
    if train_cfg.early_stopping_patience and validate:  # before the tracker, so it sees should_stop already set
        # Decide at each validation's end (Lightning's default with per-epoch validation is the train
        # epoch's end, after the tracker has reported that validation as not final).
        callbacks.append(pl.callbacks.EarlyStopping(monitor, mode=METRIC_MODES[monitor], patience=train_cfg.early_stopping_patience,
                                                    check_on_train_epoch_end=False))
    return [*callbacks, tracker]


def _trainer(train_cfg: TrainConfig, on_cuda: bool, precision: str, distributed: Distributed | None,
             callbacks: list[pl.Callback], val_interval: float, validate: bool, batches: int,
             logger, progress: bool, root_dir: str | None) -> pl.Trainer:
    placement = {"devices": 1}
    if distributed:  # one device per process; the strategy knows the process group
        placement = {"devices": "auto", "strategy": distributed.strategy, "plugins": distributed.plugins,
                     "use_distributed_sampler": False}  # the loaders shard batches themselves
    trainer = pl.Trainer(
        accelerator="gpu" if on_cuda else "cpu",
        **placement,
        precision=precision,
        max_epochs=train_cfg.epochs,
        accumulate_grad_batches=train_cfg.accumulate_grad_batches,
        gradient_clip_val=train_cfg.gradient_clip_val,
        val_check_interval=val_interval,
        limit_val_batches=None if validate else 0,
        num_sanity_val_steps=0,
        callbacks=callbacks,
        logger=logger,
        enable_checkpointing=False,  # on_result keeps the best epoch's weights, nothing else
        enable_progress_bar=progress,
        enable_model_summary=False,
        log_every_n_steps=max(1, min(50, batches // 4)),
        default_root_dir=root_dir or os.getcwd(),
    )
    if val_interval < 1.0:
        _validate_at_epoch_end_too(trainer)
    return trainer


def save_resume_state(module: PairwiseRanker, path: str) -> None:
    """Everything needed to continue training: weights, optimizer, schedule, loop and callback state."""
    module.trainer.save_checkpoint(path)
