"""Cheaper dropout masks for training on CPUs (a benchmark variant, not used by pairtune: see
benchmarks/README.md, "Variants tried for the 60% target"; it bought about 5%).

On a CPU, torch draws dropout masks with `bernoulli_` from its Mersenne-Twister generator, about 8 ns
per element: in MiniLM training on 2 cores that is 15% of every step (torch profiler), and the
attention-probability dropout also forces SDPA off its fused kernel onto the same math path used here.
The masks here come from numpy's PCG64 generator as 16-bit uniform integers (a tenth of the cost),
seeded from torch's generator at each call, so runs stay reproducible under `seed_everything`.

The model is the same: every element is kept independently with probability 1 - p and scaled by
1 / (1 - p); p is rounded to a multiple of 1/65536 (0.1 becomes 0.100006). Nothing changes in
evaluation mode, on GPUs (their dropout is already cheap) or with p = 0: the modules then run
torch's own dropout and SDPA unchanged.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

ATTENTION = "pairtune_cpu_sdpa"
"""The attention implementation registered with transformers: SDPA, except for CPU training with
attention dropout, which runs SDPA's math path with a cheap mask."""


def keep_mask(shape: torch.Size | tuple[int, ...], p: float) -> torch.Tensor:
    """(shape) bool: True with probability 1 - p (p rounded to a multiple of 1/65536), independently."""
    n = int(np.prod(shape))
    seed = int(torch.randint(0, 2**62, (1,)).item())  # torch's generator drives numpy's: seed_everything holds
    raw = np.random.Generator(np.random.PCG64(seed)).bytes(2 * n)
    uniform = torch.frombuffer(bytearray(raw), dtype=torch.int16).view(shape)  # uniform on [-32768, 32767]
    return uniform >= round(p * 65536) - 32768


def drop(x: torch.Tensor, p: float) -> torch.Tensor:
    """Training-mode dropout of a CPU tensor with a keep_mask."""
    return torch.where(keep_mask(x.shape, p), x * (1.0 / (1.0 - p)), x.new_zeros(()))


class CpuDropout(nn.Dropout):
    """nn.Dropout whose CPU training masks come from keep_mask; torch's dropout everywhere else."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or x.device.type != "cpu":
            return super().forward(x)
        return drop(x, self.p)


def attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None, **kwargs):
    """transformers' SDPA attention; in CPU training with attention dropout, the same computation
    (softmax(q k^T * scaling + mask) v) with the probabilities dropped by a keep_mask."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    causal_unmasked = attention_mask is None and getattr(module, "is_causal", False) and query.shape[2] > 1
    if not (module.training and dropout > 0 and query.device.type == "cpu") or causal_unmasked or kwargs.get("position_bias") is not None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    groups = getattr(module, "num_key_value_groups", 1)
    if groups > 1:  # grouped-query attention: one key/value head serves several query heads
        key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
    weights = torch.matmul(query, key.transpose(-1, -2)) * (query.shape[-1] ** -0.5 if scaling is None else scaling)
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:  # True = attend
            weights = weights.masked_fill(~attention_mask, torch.finfo(weights.dtype).min)
        else:  # additive
            weights = weights + attention_mask
    probs = drop(torch.softmax(weights, dim=-1), dropout)
    return torch.matmul(probs, value).transpose(1, 2).contiguous(), None


def _register() -> None:
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.masking_utils import sdpa_mask

    AttentionInterface.register(ATTENTION, attention)
    AttentionMaskInterface.register(ATTENTION, sdpa_mask)


def use_cpu_dropout(encoder: nn.Module) -> int:
    """Switch a Hugging Face encoder's dropout to the cheap CPU masks, in place: its nn.Dropout
    modules become CpuDropout, and SDPA attention becomes `attention`. Returns how many modules changed.
    Encoders with another attention implementation keep it (only their nn.Dropout modules change)."""
    changed = 0
    for parent in list(encoder.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Dropout:
                replacement = CpuDropout(child.p, child.inplace)
                replacement.train(child.training)
                setattr(parent, name, replacement)
                changed += 1
    config = getattr(encoder, "config", None)
    if config is not None and getattr(config, "_attn_implementation", None) == "sdpa":
        _register()
        encoder.set_attn_implementation(ATTENTION)
        changed += 1
    return changed
