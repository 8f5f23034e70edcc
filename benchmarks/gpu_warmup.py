"""Why the first GPU check's fp16 rows were slow: per-batch times of the same setting run again and again
in one process (a follow-up to gpu_check.py, which times each setting once, in a fresh Trainer).

    PYTHONPATH=. python benchmarks/gpu_warmup.py --order 16-mixed,32-true [--out DIR]   # on the GPU machine
    PYTHONPATH=. python benchmarks/gpu_warmup.py --cpu --quick                          # the same code on CPU

For each precision in --order, on the minilm-shaped encoder, batch 32, max_length 128, texts_per_forward
null (gpu_check.py's first setting), four passes of `--batches` batches through pairtune's own loader,
ranker and Trainer, each pass a fresh Trainer over the same module:
  same-1, same-2  the same batches (seed 0) twice: the second sees only shapes the first already ran;
  new-seed        other votes' batches (seed 1): new (texts, length) shapes, kernels already loaded;
  fixed-length    seed 2's batches with every text padded to max_length: one sequence length only.
Each pass records every batch's wall time (synchronised) and padded shape, and splits the time between
batches whose shape this process had not run before and those it had. Writes gpu_warmup-<order>.json.
What it found on an H200 (cuDNN attention's cost per new shape under fp16) and the fix: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_check as gc_

import data.loaders as loaders
from data.loaders import _VoteCollate
from model.config import TrainConfig
from model.precision import cuda_usable


class BatchClock(pl.Callback):
    """Each batch's synchronised wall time and padded (texts, length) shape; `seen` is shared across passes."""

    def __init__(self, seen: set):
        self.seen, self.rows = seen, []

    _sync = staticmethod(gc_.StepClock._sync)  # waits for the GPU's queued work before the clock is read

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self._sync(module)
        self.t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self._sync(module)
        shape = tuple(batch["input_ids"].shape)
        self.rows.append({"s": time.perf_counter() - self.t0, "shape": shape, "new": shape not in self.seen})
        self.seen.add(shape)


class FixedLength(_VoteCollate):
    """The loader's collate with every text padded to max_length: one sequence length only."""

    def __call__(self, votes):
        batch = super().__call__(votes)
        pad = self.max_length - batch["input_ids"].shape[1]
        batch["input_ids"] = torch.nn.functional.pad(batch["input_ids"], (0, pad), value=self.data.tokens.pad_id)
        batch["attention_mask"] = torch.nn.functional.pad(batch["attention_mask"], (0, pad), value=0)
        return batch


def shifted(inputs, k):
    """The fold's training votes from the k-th on: other votes, hence other batch shapes."""
    return gc_.FoldInputs(inputs.tokens, np.roll(inputs.train_less, -k), np.roll(inputs.train_more, -k),
                          inputs.val_less, inputs.val_more)


def one_pass(module, inputs, precision, seed, fixed, n_batches, plan, seen, shift=0):
    """One fresh Trainer over n_batches batches; fixed: the loader pads every text to max_length."""
    cfg = TrainConfig(batch_size=gc_.BATCH, texts_per_forward=None, precision=precision, epochs=1, seed=seed)
    loaders._VoteCollate = FixedLength if fixed else _VoteCollate
    clock = BatchClock(seen)
    start = time.perf_counter()
    try:
        gc_.fit_batches(module, gc_.with_votes(shifted(inputs, shift), n_batches * gc_.BATCH), cfg, 128, plan, [clock])
    finally:
        loaders._VoteCollate = _VoteCollate
    wall = time.perf_counter() - start
    s = np.array([r["s"] for r in clock.rows])
    new = np.array([r["new"] for r in clock.rows])
    return {"wall_s": wall, "batches": len(s), "batch_s_sum": float(s.sum()), "pairs_per_s": gc_.BATCH * len(s) / s.sum(),
            "median_batch_ms": 1e3 * float(np.median(s)), "new_shapes": int(new.sum()),
            "new_shape_s": float(s[new].sum()), "seen_shape_s": float(s[~new].sum()),
            "median_new_ms": 1e3 * float(np.median(s[new])) if new.any() else None,
            "median_seen_ms": 1e3 * float(np.median(s[~new])) if (~new).any() else None,
            "per_batch": [[round(1e3 * r["s"], 2), list(r["shape"])] for r in clock.rows]}


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--order", default="16-mixed,32-true")
    p.add_argument("--batches", type=int, default=45)
    p.add_argument("--cpu", action="store_true")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "gpu_check_out")
    p.add_argument("--data", type=Path, default=gc_.DATA_DIR)
    args = p.parse_args(argv)
    gc_.quiet_lightning()
    on_cuda = not args.cpu and cuda_usable()
    plan = gc_.Plan(on_cuda, args.quick, warmup=0, timed=args.batches, share_timed=0, train_epochs=1, train_votes=None,
                    predict_texts=None, deadline=time.perf_counter() + 1e9)
    _, inputs, _ = gc_.load_data(args.data)
    order = args.order.split(",") if on_cuda else ["32-true"]
    result = {"order": order, "cuda_module_loading": os.environ.get("CUDA_MODULE_LOADING"), "passes": []}
    seen: dict[str, set] = {}
    module = gc_.ranker(gc_.build_encoder(plan.shapes()["minilm-shaped"]), TrainConfig(), args.batches * 4)
    args.out.mkdir(parents=True, exist_ok=True)
    for precision in order:
        seen_p = seen.setdefault(precision, set())
        n = args.batches * gc_.BATCH
        for name, seed, fixed, shift in (("same-1", 0, False, 0), ("same-2", 0, False, 0), ("new-seed", 1, False, n),
                                         ("fixed-length", 2, True, 2 * n)):
            row = {"precision": precision, "pass": name,
                   **one_pass(module, inputs, precision, seed, fixed, args.batches, plan, seen_p, shift)}
            result["passes"].append(row)
            print(f"{precision:9s} {name:12s} {row['pairs_per_s']:8.1f} pairs/s  median {row['median_batch_ms']:7.2f} ms  "
                  f"new shapes {row['new_shapes']:3d} ({row['new_shape_s']:.2f} s, median {row['median_new_ms']} ms)  "
                  f"seen {row['seen_shape_s']:.2f} s (median {row['median_seen_ms']} ms)  wall {row['wall_s']:.2f} s", flush=True)
            (args.out / f"gpu_warmup-{'_'.join(order)}.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
