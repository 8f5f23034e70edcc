"""Prediction throughput: `pairtune predict`'s length-sorted batches against batches in input order.

    python benchmarks/predict_throughput.py [--texts 1000] [--reps 2] [--batch-size 64] [--threads 2]

Real texts: the first N rows of ../shared/data/comments_to_score.csv (Jigsaw's texts to score), the
MiniLM backbone with a fresh scoring head, max_length 128, fp32 on CPU, under torch.inference_mode.
Both sides tokenise once (not timed) and score the same texts with the same model; the baseline pads
each batch of consecutive rows to its longest text, pairtune sorts texts by length first (as
search/recipes/predict.py does through data.loaders.text_loader). Runs alternate A B A B; medians printed,
and the two sides' scores are checked to agree.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data import tokenize_texts
from data.loaders import text_loader
from model.backbone import load_tokenizer
from model.config import ModelConfig, TrainConfig
from model.ranker import PairwiseRanker

TEXTS = ROOT.parent / "shared" / "data" / "comments_to_score.csv"
MAX_LENGTH = 128


def score(module, tokens, batch_size: int, sort: bool) -> tuple[np.ndarray, float, int]:
    """Scores, seconds, and padded tokens fed to the encoder."""
    n = len(tokens)
    out = torch.empty(n)
    padded = 0
    start = time.perf_counter()
    with torch.inference_mode():
        if sort:
            for batch in text_loader(tokens, np.arange(n), batch_size, MAX_LENGTH):
                out[batch["position"]] = module(batch["input_ids"], batch["attention_mask"])
                padded += batch["input_ids"].numel()
        else:
            for i in range(0, n, batch_size):
                idx = np.arange(i, min(n, i + batch_size))
                ids, mask = tokens.batch(idx, MAX_LENGTH)
                out[idx] = module(ids, mask)
                padded += ids.numel()
    return out.numpy(), time.perf_counter() - start, padded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    texts = pd.read_csv(TEXTS, dtype=str, keep_default_na=False)["text"].head(args.texts).tolist()
    tokens = tokenize_texts(texts, load_tokenizer("minilm"), MAX_LENGTH)
    torch.manual_seed(0)
    module = PairwiseRanker(ModelConfig(backbone="minilm"), TrainConfig(), total_steps=1).eval()
    score(module, tokens, args.batch_size, True)  # warm-up
    times = {False: [], True: []}
    scores = {}
    for _ in range(args.reps):
        for sort in (False, True):
            scores[sort], seconds, padded = score(module, tokens, args.batch_size, sort)
            times[sort].append(seconds)
            times.setdefault(("padded", sort), padded)
    real = int(tokens.lengths_at(MAX_LENGTH).sum())
    base, ours = statistics.median(times[False]), statistics.median(times[True])
    print(f"{args.texts} texts, {real} real tokens, batch {args.batch_size}, {args.threads} threads, {args.reps} reps")
    print(f"input order:   {args.texts / base:8.1f} texts/s  ({times[('padded', False)]} padded tokens)")
    print(f"length-sorted: {args.texts / ours:8.1f} texts/s  ({times[('padded', True)]} padded tokens)")
    print(f"ratio: {base / ours:.2f}x; max |score difference| {np.abs(scores[False] - scores[True]).max():.2e}")


if __name__ == "__main__":
    main()
