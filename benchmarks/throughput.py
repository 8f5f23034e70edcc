"""Training and validation throughput: pairtune's trainable against the Jigsaw notebook's loop.

    python benchmarks/throughput.py [--reps 3] [--steps 8] [--threads 2] [--startup] [--startup-trials 4]
    python benchmarks/throughput.py --startup-only [--startup-trials 4]

One process, one run, real texts from ../shared/data/ruddit_pairs.csv (fold 0 of pairtune's leak-free
split), the MiniLM backbone, max_length 128, batch 32, AdamW(lr 1e-4, wd 1e-6), fp32 on CPU.

The baseline re-implements the notebook faithfully: a Dataset that tokenises both texts of a pair in
__getitem__ with padding="max_length"; two forward passes (more, less) per batch through the encoder's
pooler output, dropout 0.2 and a linear head; MarginRankingLoss(margin=0.5); validation that encodes
both texts of every pair. Both sides run through a real pl.Trainer; runs alternate A B A B ...

Prints medians and ratios, the measured fp32 matrix-multiply peak, the useful FLOP rate, and (with
--startup) per-trial start-up seconds measured inside a real Ray Tune search.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data import make_fold, read_pairs, tokenize_texts  # noqa: E402
from data.loaders import FoldInputs, text_loader, train_loader  # noqa: E402
from model.backbone import load_tokenizer, resolve_backbone  # noqa: E402
from model.config import ModelConfig, TrainConfig  # noqa: E402
from model.ranker import PairwiseRanker  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from flops import matmul_peak_flops, non_embedding_params, train_flops

RUDDIT = ROOT.parent / "shared" / "data" / "ruddit_pairs.csv"
MAX_LENGTH, BATCH, VAL_BATCH_BASELINE = 128, 32, 64
warnings.filterwarnings("ignore")
logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)


# ---------------------------------------------------------------- the notebook's loop (baseline)
class NotebookDataset(Dataset):
    """Tokenises each pair's two texts on every access, padded to max_length (as the notebook)."""

    def __init__(self, less: list[str], more: list[str], tokenizer, max_length: int):
        self.less, self.more, self.tokenizer, self.max_length = less, more, tokenizer, max_length

    def __len__(self) -> int:
        return len(self.less)

    def __getitem__(self, i: int) -> dict:
        enc = lambda t: self.tokenizer(t, truncation=True, add_special_tokens=True, max_length=self.max_length,  # noqa: E731
                                       padding="max_length")
        m, l = enc(self.more[i]), enc(self.less[i])  # noqa: E741
        return {
            "more_toxic_ids": torch.tensor(m["input_ids"], dtype=torch.long),
            "more_toxic_mask": torch.tensor(m["attention_mask"], dtype=torch.long),
            "less_toxic_ids": torch.tensor(l["input_ids"], dtype=torch.long),
            "less_toxic_mask": torch.tensor(l["attention_mask"], dtype=torch.long),
            "target": torch.tensor(1, dtype=torch.long),
        }


class NotebookModel(pl.LightningModule):
    def __init__(self, backbone: str, encoder=None):
        """`encoder`: one built from a config (benchmarks/gpu_check.py), with its pooler, instead of `backbone`'s."""
        super().__init__()
        from transformers import AutoModel

        # With its pooler, as the notebook.
        self.model = encoder if encoder is not None else AutoModel.from_pretrained(resolve_backbone(backbone))
        self.drop = nn.Dropout(p=0.2)
        self.fc = nn.Linear(self.model.config.hidden_size, 1)
        self.criterion = nn.MarginRankingLoss(margin=0.5)
        self.train()
        self.val_scores: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, ids, mask):
        out = self.model(input_ids=ids, attention_mask=mask, output_hidden_states=False)
        return self.fc(self.drop(out[1]))

    def training_step(self, batch, batch_idx):
        more = self(batch["more_toxic_ids"], batch["more_toxic_mask"])
        less = self(batch["less_toxic_ids"], batch["less_toxic_mask"])
        # (B, 1) -> (B,): torch 2.x no longer broadcasts MarginRankingLoss inputs against a (B,) target.
        return self.criterion(more.squeeze(-1), less.squeeze(-1), batch["target"])

    def validation_step(self, batch, batch_idx):
        more = self(batch["more_toxic_ids"], batch["more_toxic_mask"])
        less = self(batch["less_toxic_ids"], batch["less_toxic_mask"])
        self.val_scores.append((more.squeeze(-1), less.squeeze(-1)))

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=1e-4, weight_decay=1e-6)
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=500, eta_min=1e-6)}


# ---------------------------------------------------------------- measuring
class StepTimer(pl.Callback):
    """Wall time from the first training batch's start to the last one's end, and the real
    (non-padding) token counts of the sequences those batches fed the encoder."""

    def __init__(self):
        self.t0, self.t1, self.pairs, self.seq_lens, self.padded = None, None, 0, [], 0

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if self.t0 is None:
            self.t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.t1 = time.perf_counter()
        if "chunks" in batch:
            masks = [m for _, m in batch["chunks"]]
        elif "attention_mask" in batch:
            masks = [batch["attention_mask"]]
        else:
            masks = [batch["more_toxic_mask"], batch["less_toxic_mask"]]
        self.pairs += len(batch["target"]) if "target" in batch else len(batch["less"])
        for m in masks:
            self.seq_lens += m.sum(1).tolist()
            self.padded += m.numel()

    @property
    def seconds(self) -> float:
        return self.t1 - self.t0

    @property
    def tokens(self) -> int:
        return int(sum(self.seq_lens))


def trainer(max_steps: int, callbacks=(), validate: bool = False) -> pl.Trainer:
    return pl.Trainer(accelerator="cpu", devices=1, precision="32-true", max_steps=max_steps,
                      limit_val_batches=1.0 if validate else 0,
                      logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                      num_sanity_val_steps=0, callbacks=list(callbacks))


def encoder_shape(backbone: str) -> tuple[int, int, int]:
    """(non-embedding parameters, layers, hidden size) of the encoder."""
    from transformers import AutoConfig, AutoModel

    model = AutoModel.from_config(AutoConfig.from_pretrained(resolve_backbone(backbone)))
    return non_embedding_params(model), model.config.num_hidden_layers, model.config.hidden_size


def matmul_peak_gflops(size: int = 2048, reps: int = 6) -> float:
    return matmul_peak_flops(size, reps) / 1e9


def measure_train(kind: str, setup) -> StepTimer:
    """Warm up on two batches, then time one epoch over the fixed benchmark votes."""
    module, warm_loader, loader = setup(kind)
    trainer(2).fit(module, train_dataloaders=warm_loader)
    timer = StepTimer()
    trainer(len(loader), [timer]).fit(module, train_dataloaders=loader)
    return timer


def measure_validation(kind: str, setup) -> tuple[float, float]:
    """Seconds for one full validation pass over the fold, and the agreement it computed."""
    module, loader, votes = setup(kind)
    module.eval()
    t = time.perf_counter()
    trainer(1, validate=True).validate(module, dataloaders=loader, verbose=False)
    seconds = time.perf_counter() - t
    if kind == "baseline":
        more = torch.cat([m for m, _ in module.val_scores])
        less = torch.cat([l for _, l in module.val_scores])  # noqa: E741
        return seconds, (more > less).double().mean().item()
    return seconds, float(module.trainer.callback_metrics["val/agreement"])


def startup_seconds(threads: int, trials: int = 4) -> list[dict]:
    """Run a small real search (`trials` trials of MiniLM on Ruddit, one at a time, each training 2 steps
    and validating once) and read, from each trial's first result: process_trial (1: the trial started
    its process; 2+: it reused one, search.reuse_trial_processes), imports_s (importing torch,
    transformers and Lightning in a fresh trial process, before the trial function starts; 0 in a reused
    one) and startup_s (trial function start to first optimizer step)."""
    import yaml

    tmp = Path(tempfile.mkdtemp())
    cfg = {
        "data": {"pairs": str(RUDDIT), "max_train_votes": 64, "max_length": MAX_LENGTH},
        "model": {"backbone": "minilm"},
        "train": {"epochs": 1, "batch_size": BATCH},
        "search": {"name": "startup", "storage_path": str(tmp), "num_samples": trials, "max_concurrent_trials": 1,
                   "cpus_per_trial": threads, "scheduler": "fifo", "baseline": False,
                   "space": {"train.lr": {"loguniform": [1e-5, 1e-3]}}},
    }
    (tmp / "c.yaml").write_text(yaml.safe_dump(cfg))
    subprocess.run([sys.executable, "-m", "search.cli", "search", str(tmp / "c.yaml")], cwd=ROOT, check=True,
                   capture_output=True)
    out = []
    for result in (tmp / "startup").glob("*/result.json"):
        first = json.loads(result.read_text().splitlines()[0])
        out.append({"process_trial": first.get("process_trial", 1), "imports_s": first.get("imports_s", float("nan")),
                    "startup_s": first["startup_s"], "started": first["timestamp"]})
    return sorted(out, key=lambda r: r["started"])


def print_startup(rows: list[dict]) -> None:
    print("\n| trial | process | imports, s | trial function to first optimizer step, s | imports + start-up, s |")
    print("| --- | --- | --- | --- | --- |")
    for i, r in enumerate(rows, 1):
        kind = "fresh" if r["process_trial"] == 1 else f"reused (its trial {r['process_trial']})"
        print(f"| {i} | {kind} | {r['imports_s']:.2f} | {r['startup_s']:.2f} | {r['imports_s'] + r['startup_s']:.2f} |")
    total = [r["imports_s"] + r["startup_s"] for r in rows]
    print(f"| mean over {len(rows)} trials | | | | **{statistics.mean(total):.2f}** |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--steps", type=int, default=16, help="timed batches per run: each run trains on the same steps*32 votes")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--startup", action="store_true", help="also measure trial start-up in a real search")
    ap.add_argument("--startup-only", action="store_true", help="measure trial start-up only (implies --startup)")
    ap.add_argument("--startup-trials", type=int, default=4, help="trials in the start-up search, run one at a time")
    ap.add_argument("--texts-per-forward", type=int, default=TrainConfig.texts_per_forward,
                    help="pairtune's train.texts_per_forward (0 = one forward pass per batch)")
    ap.add_argument("--no-validation", action="store_true")
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--ablation", action="store_true",
                    help="also time pairtune with its speed-ups switched on one by one, on the same votes")
    args = ap.parse_args()
    if args.startup_only:
        print_startup(startup_seconds(args.threads, args.startup_trials))
        return
    torch.set_num_threads(args.threads)
    pl.seed_everything(0, verbose=False)

    votes = read_pairs(RUDDIT)
    split = make_fold(votes, 5, 0, seed=42)
    tok = load_tokenizer("minilm")
    tokens = tokenize_texts(votes.texts, tok, MAX_LENGTH)
    t, v = split.train_votes, split.val_votes
    data = FoldInputs(tokens, votes.less[t], votes.more[t], votes.less[v], votes.more[v])
    text = lambda idx: [votes.texts[i] for i in idx]  # noqa: E731
    tcfg = TrainConfig(lr=1e-4, weight_decay=1e-6, batch_size=BATCH, margin=0.5, texts_per_forward=args.texts_per_forward or None)
    mcfg = ModelConfig(backbone="minilm", pooling="cls", dropout=0.2)

    # The same seeded subset of training votes for both sides (and a separate one to warm up on).
    picked = np.random.default_rng(0).choice(len(data.train_less), size=(args.steps + 2) * BATCH, replace=False)
    timed, warm = picked[: args.steps * BATCH], picked[args.steps * BATCH :]
    subset = lambda idx: FoldInputs(tokens, data.train_less[idx], data.train_more[idx], data.val_less, data.val_more)  # noqa: E731

    def train_setup(kind):
        if kind == "baseline":
            loader = lambda idx: DataLoader(  # noqa: E731
                NotebookDataset(text(data.train_less[idx]), text(data.train_more[idx]), tok, MAX_LENGTH),
                batch_size=BATCH, shuffle=True, num_workers=0, drop_last=True)
            return NotebookModel("minilm"), loader(warm), loader(timed)
        loader = lambda idx: train_loader(subset(idx), BATCH, MAX_LENGTH, seed=0, texts_per_forward=tcfg.texts_per_forward)  # noqa: E731
        return PairwiseRanker(mcfg, tcfg, total_steps=1000), loader(warm), loader(timed)

    def val_setup(kind):
        if kind == "baseline":
            ds = NotebookDataset(text(data.val_less), text(data.val_more), tok, MAX_LENGTH)
            return NotebookModel("minilm"), DataLoader(ds, batch_size=VAL_BATCH_BASELINE, shuffle=False), None
        module = PairwiseRanker(mcfg, tcfg, total_steps=1)
        texts, less, more = data.val_texts()
        module.set_validation_votes(len(texts), less, more)
        return module, text_loader(tokens, texts, tcfg.eval_batch_size, MAX_LENGTH), None

    params, layers, hidden = encoder_shape("minilm")
    peak = matmul_peak_gflops()
    runs = {"baseline": [], "pairtune": []}
    for rep in range(args.reps if not args.skip_train else 0):
        for kind in ("baseline", "pairtune"):  # interleaved: A B A B ...
            timer = measure_train(kind, train_setup)
            flops = train_flops(timer.seq_lens, params, layers, hidden)
            runs[kind].append({"pairs_s": timer.pairs / timer.seconds, "tokens_s": timer.tokens / timer.seconds,
                               "gflops": flops / timer.seconds / 1e9})
            print(f"rep {rep} {kind:8s} {runs[kind][-1]}", flush=True)
    med = {k: {m: statistics.median(r[m] for r in rs) for m in rs[0]} for k, rs in runs.items() if rs}
    val = {}
    if not args.no_validation:
        for kind in ("baseline", "pairtune"):
            val[kind] = measure_validation(kind, val_setup)
            print(f"validation {kind}: {val[kind][0]:.1f} s (agreement {val[kind][1]:.4f})", flush=True)
    peak_after = matmul_peak_gflops()
    print("\n| metric | baseline | pairtune | ratio |\n| --- | --- | --- | --- |")
    for m, label in [] if not med else (("pairs_s", "training pairs/s (median)"), ("tokens_s", "real tokens/s into the encoder (median)")):
        print(f"| {label} | {med['baseline'][m]:.2f} | {med['pairtune'][m]:.2f} | {med['pairtune'][m] / med['baseline'][m]:.2f}x |")
    if val:
        b, p = val["baseline"][0], val["pairtune"][0]
        print(f"| full validation pass over fold 0 ({len(data.val_less)} votes), s | {b:.1f} | {p:.1f} | {b / p:.1f}x faster |")
    peak_m = max(peak, peak_after)
    print(f"| measured fp32 matmul peak (2048x2048, best of 6), GFLOP/s | {peak_m:.1f} | | |")
    if med:
        print(f"| useful training GFLOP/s (median) | {med['baseline']['gflops']:.1f} | {med['pairtune']['gflops']:.1f} | |")
        print(f"| useful training FLOP rate / fp32 peak | {med['baseline']['gflops'] / peak_m:.0%} | "
              f"{med['pairtune']['gflops'] / peak_m:.0%} | |")
    if args.ablation:
        texts, _, _ = data.val_texts()
        print(f"\nvalidation fold: {len(data.val_less)} votes over {len(texts)} unique texts")
        for grouping, tpf in ((False, None), (True, None), (True, 16)):
            def setup(kind, grouping=grouping, tpf=tpf):
                cfg = TrainConfig(lr=1e-4, weight_decay=1e-6, batch_size=BATCH, texts_per_forward=tpf)
                loader = lambda idx: train_loader(subset(idx), BATCH, MAX_LENGTH, 0, grouping, tpf)  # noqa: E731
                return PairwiseRanker(mcfg, cfg, total_steps=1000), loader(warm), loader(timed)

            timer = measure_train("pairtune", setup)
            real = timer.tokens / max(1, timer.padded)
            print(f"| length_grouping={grouping}, texts_per_forward={tpf} | {timer.pairs / timer.seconds:.2f} pairs/s | "
                  f"{real:.0%} of padded tokens real |")
    if args.startup:
        print_startup(startup_seconds(args.threads, args.startup_trials))
    print(f"\n{time.strftime('%Y-%m-%d')}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, threads {args.threads}, reps {args.reps}, steps {args.steps}")


if __name__ == "__main__":
    main()
