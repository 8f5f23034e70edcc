"""Choosing the training precision for the hardware a trial actually got."""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)


class PrecisionError(ValueError):
    """A precision the hardware cannot run."""


def cuda_usable() -> bool:
    """True when a real CUDA device is visible (a logical Ray GPU on a CPU box is not)."""
    return torch.cuda.is_available() and torch.cuda.device_count() > 0


def resolve_precision(requested: str, on_cuda: bool | None = None) -> str:
    """`auto` is 16-mixed on CUDA and 32-true on CPU (bf16 on CPU is ~100x slower than fp32 here).

    Explicit values are kept when the hardware supports them and raise PrecisionError when not.
    """
    on_cuda = cuda_usable() if on_cuda is None else on_cuda
    if requested == "auto":
        return "16-mixed" if on_cuda else "32-true"
    if requested == "16-mixed" and not on_cuda:
        raise PrecisionError("train.precision: 16-mixed needs a CUDA GPU and none is visible; use auto or 32-true")
    if requested == "bf16-mixed":
        if on_cuda and not torch.cuda.is_bf16_supported():
            raise PrecisionError("train.precision: bf16-mixed is not supported by this GPU; use auto or 16-mixed")
        if not on_cuda:
            log.warning("train.precision bf16-mixed on CPU: expect it to be far slower than 32-true")
    return requested
