"""Scoring texts with a trained ranker: tokenised once, longest first in batches padded only to their
own longest text, under torch.inference_mode, with fp16 (or bf16) autocast on a GPU.

`pairtune predict` (search/recipes/predict.py) scores through this, and so does the GPU check
(benchmarks/gpu_check.py), which may import only data/ and model/.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from data.loaders import text_loader
from data.tokens import TokenizedTexts


def inference_autocast(device: torch.device, precision: str):
    """fp16 autocast on CUDA for `auto` and 16-mixed, bf16 for bf16-mixed; none on the CPU (fp32)."""
    if device.type == "cuda" and precision in ("auto", "16-mixed", "bf16-mixed"):
        return torch.autocast("cuda", dtype=torch.bfloat16 if precision == "bf16-mixed" else torch.float16)
    return torch.autocast(device.type, enabled=False)


def score_tokens(module, tokens: TokenizedTexts, max_length: int, precision: str, device: torch.device,
                 batch_size: int = 128, on_batch: Callable[[int], None] | None = None) -> np.ndarray:
    """One score per tokenised text, in order (float64). on_batch(n) after each batch of n texts."""
    scores = torch.empty(len(tokens), dtype=torch.float32)
    module = module.to(device).eval()
    with torch.inference_mode():
        for batch in text_loader(tokens, np.arange(len(tokens)), batch_size, max_length):
            with inference_autocast(device, precision):
                out = module(batch["input_ids"].to(device), batch["attention_mask"].to(device))
            scores[batch["position"]] = out.float().cpu()
            if on_batch:
                on_batch(len(batch["position"]))
    return scores.numpy().astype(np.float64)
