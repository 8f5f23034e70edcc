"""Counting what training computes, shared by throughput.py and gpu_check.py: the useful FLOPs of a
batch of real tokens and the machine's best matrix-multiply rate to compare them with."""

from __future__ import annotations

import time

import numpy as np
import torch


def non_embedding_params(encoder) -> int:
    """Parameters that cost FLOPs per token: all but the embedding tables (a lookup, not a product)."""
    return sum(p.numel() for p in encoder.parameters()) - sum(p.numel() for p in encoder.embeddings.parameters())


def train_flops(lengths, params: int, layers: int, hidden: int) -> float:
    """Forward+backward FLOPs over real tokens: 3x forward; forward = 2*P per token (dense layers)
    plus 4*L*H*n^2 per sequence of n tokens (attention scores and their weighted sum)."""
    n = np.asarray(lengths, dtype=np.float64)
    return float(3 * (2 * params * n.sum() + 4 * layers * hidden * (n**2).sum()))


def matmul_peak_flops(size: int, reps: int) -> float:
    """This process's best fp32 `torch.mm` rate on size x size matrices, FLOP/s (best of reps)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * size**3 / best
