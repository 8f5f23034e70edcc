"""The trainable: a Hugging Face encoder with a linear scoring head, trained on pair votes."""

from __future__ import annotations

import math

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from model.backbone import load_encoder
from model.config import ModelConfig, TrainConfig
from model.losses import pairwise_agreement, pairwise_loss, pearson, spearman
from model.metrics import AGREEMENT, PEARSON, SPEARMAN, TRAIN_LOSS, VAL_LOSS


def lr_lambda(schedule: str, total_steps: int, warmup_steps: int, floor: float):
    """Multiplier of the peak learning rate at each optimizer step (LambdaLR)."""

    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        if schedule == "linear":
            return 1.0 - progress
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))  # cosine

    return f


# Attention backends the encoder may use: all but cuDNN's. On a GPU, under fp16 autocast, PyTorch sends
# attention with a padding mask to cuDNN first, and cuDNN builds an execution plan for every new
# (texts, length) shape: about 150 ms each on an H200 (torch 2.11; benchmarks/gpu_warmup.py), against
# 25-30 ms for a whole MiniLM training step. Length-grouped batches are nearly all new shapes in a
# trial's first epoch, so fp16 trained at a seventh of fp32's speed there. The others have no per-shape cost.
ATTENTION_BACKENDS = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]


class PairwiseRanker(pl.LightningModule):
    """score(text) = head(dropout(pool(encoder(text)))); trained so score(more) > score(less).

    The validation votes are given as positions among the validation texts: each unique text is
    scored once per validation, and agreement is computed over all votes from those scores.
    """

    def __init__(self, model: ModelConfig, train: TrainConfig, total_steps: int, encoder: nn.Module | None = None):
        super().__init__()
        self.model_cfg, self.train_cfg, self.total_steps = model, train, total_steps
        self.encoder = encoder if encoder is not None else load_encoder(model.backbone, pooler=model.pooling == "pooler")
        self.dropout = nn.Dropout(model.dropout)
        self.head = nn.Linear(self.encoder.config.hidden_size, 1)
        self.val_less = self.val_more = None
        self.val_targets: np.ndarray | None = None
        self._val_scores: torch.Tensor | None = None
        self.last_val_scores: np.ndarray | None = None  # (n_val_texts,) float32: the last validation's scores
        self.train()  # from_pretrained returns the encoder in eval mode, which would switch off its dropout

    def set_validation_votes(self, n_texts: int, less: np.ndarray, more: np.ndarray, targets: np.ndarray | None = None) -> None:
        """targets: (n_texts,) true scores of the validation texts, when known: then Pearson and
        Spearman are logged too (and mse's validation loss is the regression error)."""
        self.n_val_texts = n_texts
        self.val_less, self.val_more = torch.from_numpy(less), torch.from_numpy(more)
        self.val_targets = None if targets is None else np.asarray(targets, dtype=np.float32)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        with sdpa_kernel(ATTENTION_BACKENDS):
            out = self.encoder(input_ids=input_ids, attention_mask=attention_mask)
        hidden = out.last_hidden_state  # (B, T, H)
        if self.model_cfg.pooling == "pooler":
            pooled = out.pooler_output  # the backbone's pretrained dense layer and tanh over the first token
        elif self.model_cfg.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        # The head runs in fp32 even under fp16 autocast: half-precision scores would create ties,
        # and ties count as misses in the agreement metric.
        with torch.autocast(device_type=input_ids.device.type, enabled=False):
            return self.head(self.dropout(pooled.float())).squeeze(-1)  # (B,)

    def _step_scores(self, batch: dict) -> torch.Tensor:
        if "chunks" in batch:  # length-sorted chunks of the batch's texts, each padded on its own
            return torch.cat([self(ids, mask) for ids, mask in batch["chunks"]])
        return self(batch["input_ids"], batch["attention_mask"])

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        scores = self._step_scores(batch)  # (U,) one per unique text in the batch
        if "targets" in batch:  # pointwise regression (train.loss mse): a batch of texts with scores
            loss = torch.nn.functional.mse_loss(scores.float(), batch["targets"].float())
            n = len(batch["targets"])
        else:
            loss = pairwise_loss(self.train_cfg.loss, scores[batch["more"]], scores[batch["less"]], self.train_cfg.margin)
            n = len(batch["less"])
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss.item()} at step {self.global_step} (lr {self.train_cfg.lr:g})")
        self.log(TRAIN_LOSS, loss, prog_bar=True, batch_size=n)
        return loss * self._batch_share(n)

    def _batch_share(self, n: int) -> torch.Tensor | float:
        """Data-parallel training: this process's loss is the mean over its n items, and DDP averages
        the processes' gradients; weighting by n * world / (the batch's items) makes that average the
        mean over the whole batch, as in one process, even when the shares differ by an item."""
        world = self.trainer.world_size if self._trainer is not None else 1
        if world == 1:
            return 1.0
        counts = self.all_gather(torch.tensor(float(n), device=self.device))  # (world,)
        return n * world / counts.sum()

    def on_validation_epoch_start(self) -> None:
        self._val_scores = torch.full((self.n_val_texts,), float("nan"), device=self.device)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._val_scores[batch["position"]] = self._step_scores(batch)

    def on_validation_epoch_end(self) -> None:
        scores = self._val_scores
        if self._trainer is not None and self.trainer.world_size > 1:
            # Each process scored its share of the texts (data.loaders.text_loader); the largest value
            # per text collects them (a text scored twice got the same score twice).
            scores = torch.where(torch.isnan(scores), torch.full_like(scores, -torch.inf), scores)
            torch.distributed.all_reduce(scores, op=torch.distributed.ReduceOp.MAX)
            scores[torch.isneginf(scores)] = torch.nan
        if torch.isnan(scores).any():
            raise RuntimeError("some validation texts were not scored")
        self.last_val_scores = scores.detach().float().cpu().numpy()  # every process has them all
        less, more = self.val_less.to(scores.device), self.val_more.to(scores.device)
        if self.train_cfg.loss == "mse":
            targets = torch.from_numpy(self.val_targets).to(scores.device)
            loss = torch.nn.functional.mse_loss(scores.float(), targets)
        else:
            loss = pairwise_loss(self.train_cfg.loss, scores[more], scores[less], self.train_cfg.margin)
        self.log(AGREEMENT, pairwise_agreement(scores, less, more), prog_bar=True)
        self.log(VAL_LOSS, loss, prog_bar=True)
        if self.val_targets is not None:
            predicted = scores.detach().float().cpu().numpy()
            self.log(PEARSON, pearson(predicted, self.val_targets), prog_bar=True)
            self.log(SPEARMAN, spearman(predicted, self.val_targets))

    def configure_optimizers(self):
        cfg = self.train_cfg
        decay, no_decay = [], []
        for name, p in self.named_parameters():
            if p.requires_grad:
                (no_decay if p.ndim < 2 else decay).append(p)  # biases and LayerNorm weights are 1-D
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=cfg.lr,
        )
        total = max(1, self.total_steps)
        if cfg.schedule == "onecycle":
            pct = cfg.warmup_ratio or 0.25
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total, pct_start=pct)
        else:
            warmup = int(round(cfg.warmup_ratio * total))
            floor = min(1.0, cfg.min_lr / cfg.lr)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg.schedule, total, warmup, floor))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
