"""Training-speed variants of pairtune's trainable against itself, for issue 3's FLOP-rate target:
fused AdamW, torch.compile of the encoder (dynamic shapes), cheaper dropout masks (cpu_dropout.py),
and the encoder's dropout off.

    python benchmarks/throughput_variants.py --variants base,fused,compile,nodrop --steps 12 --reps 2

Same setup as throughput.py (fold 0 of Ruddit, MiniLM, max_length 128, batch 32, length-grouped
batches, chunks of 16 texts, 2 threads); runs interleaved, medians printed, FLOP rate against the
fp32 matmul peak measured in the same run. Exploration only: none of the variants is pairtune's default.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import throughput as T

from data.loaders import FoldInputs, train_loader
from model.config import ModelConfig, TrainConfig
from model.ranker import PairwiseRanker


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", default="base,fused,compile,fastdrop,nodrop")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    variants = args.variants.split(",")
    votes = T.read_pairs(T.RUDDIT)
    split = T.make_fold(votes, 5, 0, seed=42)
    tokens = T.tokenize_texts(votes.texts, T.load_tokenizer("minilm"), T.MAX_LENGTH)
    t = split.train_votes
    picked = np.random.default_rng(0).choice(len(t), size=(args.steps + 2) * T.BATCH, replace=False)
    timed, warm = t[picked[: args.steps * T.BATCH]], t[picked[args.steps * T.BATCH:]]
    none = votes.less[:0]
    subset = lambda idx: FoldInputs(tokens, votes.less[idx], votes.more[idx], none, none)
    params, layers, hidden = T.encoder_shape("minilm")
    mcfg = ModelConfig(backbone="minilm", pooling="cls", dropout=0.2)
    tcfg = TrainConfig(lr=1e-4, weight_decay=1e-6, batch_size=T.BATCH, margin=0.5)

    def setup(variant: str):
        module = PairwiseRanker(mcfg, tcfg, total_steps=1000)
        if variant == "nodrop":  # the encoder's own attention and hidden dropout (the head keeps its own)
            for m in module.encoder.modules():
                if isinstance(m, torch.nn.Dropout):
                    m.p = 0.0
            module.encoder.config.attention_probs_dropout_prob = 0.0
        if variant == "fastdrop":  # the same dropout, its masks drawn by numpy's PCG64 (cpu_dropout.py)
            from cpu_dropout import use_cpu_dropout

            use_cpu_dropout(module.encoder)
        if variant == "fused":
            plain = module.configure_optimizers

            def fused():
                groups = plain()["optimizer"].param_groups
                opt = torch.optim.AdamW(groups, lr=tcfg.lr, fused=True)
                return {"optimizer": opt, "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0),
                                                           "interval": "step"}}

            module.configure_optimizers = fused
        if variant == "compile":
            module.encoder = torch.compile(module.encoder, dynamic=True)
        loader = lambda idx: train_loader(subset(idx), T.BATCH, T.MAX_LENGTH, 0, True, tcfg.texts_per_forward)
        return module, loader(warm), loader(timed)

    peak = T.matmul_peak_gflops()
    runs = {v: [] for v in variants}
    for rep in range(args.reps):
        for v in variants:  # interleaved
            started = time.perf_counter()
            timer = T.measure_train(v, setup)
            gflops = T.train_flops(timer.seq_lens, params, layers, hidden) / timer.seconds / 1e9
            runs[v].append((timer.pairs / timer.seconds, gflops))
            print(f"rep {rep} {v}: {runs[v][-1][0]:.2f} pairs/s, {gflops:.1f} GFLOP/s "
                  f"({time.perf_counter() - started:.0f} s with warm-up)", flush=True)
    peak = max(peak, T.matmul_peak_gflops())
    print(f"\n| variant | pairs/s (median) | useful FLOP rate / fp32 peak ({peak:.1f} GFLOP/s) |\n| --- | --- | --- |")
    for v in variants:
        pairs = statistics.median(r[0] for r in runs[v])
        rate = statistics.median(r[1] for r in runs[v]) / peak
        print(f"| {v} | {pairs:.2f} | {rate:.0%} |")


if __name__ == "__main__":
    main()
