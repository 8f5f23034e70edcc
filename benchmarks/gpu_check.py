"""GPU check (issue 18): what pairtune's fp16 trials do on one GPU, in one short run.

    PYTHONPATH=. python benchmarks/gpu_check_prepare.py          # here, once: the data the run carries
    PYTHONPATH=. python benchmarks/gpu_check.py [--out DIR]       # on the GPU machine (see the device command below)
    PYTHONPATH=. python benchmarks/gpu_check.py --cpu --quick     # the same code paths on CPU, tiny shapes

Measured, on real Ruddit texts (a seeded 2,000-vote subset of ../shared/data/ruddit_pairs.csv that
gpu_check_prepare.py copies into benchmarks/gpu_check_data/, ignored by git, with MiniLM's tokenizer files):
- training throughput of pairtune's own trainable (model.ranker.PairwiseRanker, data.loaders.train_loader
  and the pl.Trainer that model.train.fit builds, model.train._trainer), fp16-mixed vs fp32, for a
  MiniLM-shaped and a roberta-base-shaped encoder built from a config (random weights: no downloads,
  and speed does not depend on the weights), batch 32, max_length 128 and 256, `train.texts_per_forward`
  null and 16: pairs/s, real (non-pad) tokens/s, useful TFLOP/s and its share of the fp16 dense peak;
- the Jigsaw notebook's training loop on the same device (benchmarks/throughput.py's NotebookDataset and
  NotebookModel, with the notebook's loader: batch 32, 2 workers, pinned memory; fp16 as the notebook,
  and fp32) for both shapes at max_length 128, beside pairtune's rows: the training gap on a GPU (issue 17);
- peak GPU memory per setting, hence how many trials fit on one GPU (`gpus_per_trial: 1/k`), and two
  trial processes sharing the GPU (what `gpus_per_trial: 0.5` does): each one's pairs/s alone, then both
  together, their timed windows aligned by a barrier;
- fp16 correctness: validation scores under fp16 autocast vs fp32 for the same weights (the project's
  validation step through Trainer.validate; the head stays fp32), and a short fp16 training run whose
  loss must fall and stay finite with the grad scaler;
- the predict scoring path on CUDA (tokenise once, length-sorted batches, autocast, inference_mode):
  model.scoring.score_tokens, which `pairtune predict` scores through.

Imports: only data/, model/, benchmarks/throughput.py's notebook loop, torch, Lightning, transformers,
pandas and numpy (no search/, Ray or Optuna; the JSON lists any that got imported). No network, no pretrained weights. Writes
gpu_check.json and gpu_check.md into --out (default benchmarks/gpu_check_out/, ignored), after
every section, so a run stopped by its time limit still leaves what it measured.

The device command (the `run` tool; the prepared folder travels in `carry`, about 2 MB). The tool
sends the checkout of the session that calls it, so call it from a checkout holding this script and
benchmarks/gpu_check_data/:

    run(command="set -o pipefail; export PYTHONUNBUFFERED=1 PYTHONPATH=.; nvidia-smi -L; python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_gpu.py 2>&1 | tee $OUT/pytest_gpu.txt; python3 benchmarks/gpu_check.py --out $OUT 2>&1 | tee $OUT/gpu_check.log",
        carry=["benchmarks/gpu_check_data"], timeout_s=360)

360 s leaves room for one rerun in a 15-minute device budget (start-up of a minute or two, two runs of
at most 6 minutes). Measured on 2026-12-04 (benchmarks/README.md): 21-27 s for the gpu tests, 105 s for
the check (187 s before the ranker kept cuDNN's attention out), 175-230 s for the whole command. The
check starts no new measurement after --budget-s (default 210 s) and records what it skipped, so a
slower machine still ends near that.
"""

from __future__ import annotations

import argparse
import copy
import functools
import gc
import itertools
import json
import logging
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from flops import matmul_peak_flops, non_embedding_params, train_flops

from data.folds import make_fold
from data.loaders import FoldInputs, text_loader, train_loader
from data.pairs import read_pairs
from data.tokens import TokenizedTexts, tokenize_texts
from model.config import ModelConfig, TrainConfig
from model.epochs import steps_per_epoch
from model.losses import spearman
from model.metrics import AGREEMENT
from model.precision import cuda_usable, resolve_precision
from model.ranker import PairwiseRanker
from model.scoring import score_tokens
from model.train import _trainer

log = logging.getLogger("gpu_check")

DATA_DIR = ROOT / "benchmarks" / "gpu_check_data"  # benchmarks/gpu_check_prepare.py writes it
OUT_DIR = ROOT / "benchmarks" / "gpu_check_out"
FORBIDDEN = ("search", "ray", "optuna")

# Dense fp16 tensor-core peak with fp32 accumulation (what autocast's matmuls use) of the H100/H200 SXM:
# NVIDIA H100 Tensor Core GPU Architecture whitepaper, H100 SXM5 table, 989.4 TFLOP/s; the H200
# datasheet's "FP16 Tensor Core 1,979 TFLOPS" is the same chip with 2:4 sparsity (half is dense).
H200_FP16_DENSE_PEAK_TFLOPS = 989.4
H200_PEAK_SOURCE = "NVIDIA H100 architecture whitepaper (SXM5, dense FP16 tensor, FP32 accumulate); H200 datasheet /2 for sparsity"

BATCH, MAX_LENGTHS, CHUNKINGS = 32, (128, 256), (None, 16)  # 16: train.texts_per_forward's default
ENCODERS = {  # built from a config: transformers' BertModel in these shapes (MiniLM's tokenizer ids fit both vocabularies)
    "minilm-shaped": {"num_hidden_layers": 6, "hidden_size": 384, "num_attention_heads": 12, "intermediate_size": 1536,
                      "vocab_size": 30522},
    "roberta-base-shaped": {"num_hidden_layers": 12, "hidden_size": 768, "num_attention_heads": 12, "intermediate_size": 3072,
                            "vocab_size": 50265, "max_position_embeddings": 514, "type_vocab_size": 1, "layer_norm_eps": 1e-5},
}
QUICK_SHAPES = {  # --quick: the same vocabularies, tiny bodies
    "minilm-shaped": {"num_hidden_layers": 2, "hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64},
    "roberta-base-shaped": {"num_hidden_layers": 2, "hidden_size": 48, "num_attention_heads": 2, "intermediate_size": 96},
}
TRAIN_RUN_LR = 3e-4  # the fp16 training run starts from random weights, so a little above fine-tuning's 1e-4


@dataclass
class Plan:
    """How much to run: the GPU run, or --quick (few steps, tiny shapes, small text sets)."""

    on_cuda: bool
    quick: bool
    warmup: int  # untimed training batches before the timed ones
    timed: int
    share_timed: int  # timed batches of each worker in the sharing test
    train_epochs: int  # of the fp16 training run over the fold's training votes
    train_votes: int | None  # of those votes, at most this many (None = all)
    predict_texts: int | None  # None = every prepared text
    deadline: float  # time.perf_counter() after which no new measurement starts
    skipped: list = field(default_factory=list)

    @property
    def precisions(self) -> tuple[str, ...]:
        return ("16-mixed", "32-true") if self.on_cuda else ("32-true",)

    @property
    def low(self) -> str:
        """The reduced precision whose scores are compared with fp32 (CPU autocast has bf16, not fp16)."""
        return "16-mixed" if self.on_cuda else "bf16-mixed"

    def shapes(self) -> dict[str, dict]:
        return {name: {**shape, **(QUICK_SHAPES[name] if self.quick else {})} for name, shape in ENCODERS.items()}

    def time_left(self, what: str) -> bool:
        if time.perf_counter() < self.deadline:
            return True
        self.skipped.append(what)
        log.warning("time budget spent: skipping %s", what)
        return False


# ---------------------------------------------------------------- data
def load_data(data_dir: Path):
    """(texts, fold 0 of 5 as FoldInputs tokenised at the longest max_length, the tokenizer)."""
    from transformers import AutoTokenizer

    if not (data_dir / "pairs.csv").exists():
        raise SystemExit(f"{data_dir}: no prepared data; run `PYTHONPATH=. python benchmarks/gpu_check_prepare.py` first")
    votes = read_pairs(data_dir / "pairs.csv")
    split = make_fold(votes, 5, 0, seed=42)
    tokenizer = AutoTokenizer.from_pretrained(str(data_dir / "tokenizer"))
    tokens = tokenize_texts(votes.texts, tokenizer, max(MAX_LENGTHS))
    v = votes
    inputs = FoldInputs(tokens, v.less[split.train_votes], v.more[split.train_votes], v.less[split.val_votes],
                        v.more[split.val_votes])
    return votes.texts, inputs, tokenizer


def with_votes(inputs: FoldInputs, n: int) -> FoldInputs:
    """The fold's training votes repeated or cut to exactly n, and no validation: n // BATCH batches."""
    empty = np.zeros(0, dtype=np.int64)
    return FoldInputs(inputs.tokens, np.resize(inputs.train_less, n), np.resize(inputs.train_more, n), empty, empty)


# ---------------------------------------------------------------- the trainable, as pairtune runs it
def build_encoder(shape: dict, seed: int = 0):
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    return BertModel(BertConfig(**shape), add_pooling_layer=False)  # load_encoder drops the pooler too


class StepClock(pl.Callback):
    """Times the training batches after the first `warmup`, and counts the pairs and real tokens they
    fed the encoder; records every batch's loss and (16-mixed) the grad scaler's scale."""

    def __init__(self, warmup: int, barrier=None):
        self.warmup, self.barrier, self.batches = warmup, barrier, 0  # batches counted over all epochs
        self.t0 = self.t1 = self.wall0 = self.wall1 = math.nan
        self.pairs, self.padded, self.lengths = 0, 0, []
        self.losses, self.scales = [], []

    @staticmethod
    def _sync(module) -> None:
        if module.device.type == "cuda":
            torch.cuda.synchronize(module.device)

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if self.batches == self.warmup:
            if self.barrier is not None:
                self.barrier()
            self._sync(module)
            self.t0, self.wall0 = time.perf_counter(), time.time()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))  # the step already synced (training_step checks isfinite)
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        self.scales.append(None if scaler is None else float(scaler.get_scale()))
        self.batches += 1
        if self.batches <= self.warmup:
            return
        if "chunks" in batch:
            masks = [m for _, m in batch["chunks"]]
        elif "attention_mask" in batch:
            masks = [batch["attention_mask"]]
        else:  # the notebook's: each pair's two texts, each padded to max_length
            masks = [batch["more_toxic_mask"], batch["less_toxic_mask"]]
        self.pairs += len(batch["less"]) if "less" in batch else len(batch["target"])
        self.padded += sum(m.numel() for m in masks)
        self.lengths += [m.sum(1) for m in masks]  # (U,) real tokens per text, left on the device
        self._sync(module)
        self.t1, self.wall1 = time.perf_counter(), time.time()

    @property
    def seconds(self) -> float:
        return self.t1 - self.t0

    def real_lengths(self) -> np.ndarray:
        return torch.cat(self.lengths).cpu().numpy() if self.lengths else np.zeros(0)


def ranker(encoder, cfg: TrainConfig, total_steps: int) -> PairwiseRanker:
    return PairwiseRanker(ModelConfig(backbone="built from a config", pooling="mean"), cfg, total_steps, encoder=encoder)


def fit_batches(module: PairwiseRanker, inputs: FoldInputs, cfg: TrainConfig, max_length: int, plan: Plan,
                callbacks: list) -> pl.Trainer:
    """cfg.epochs epochs over inputs' training votes, through the loader and Trainer that model.train.fit builds."""
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    precision = resolve_precision(cfg.precision, plan.on_cuda)
    loader = train_loader(inputs, cfg.batch_size, max_length, cfg.seed, cfg.length_grouping, cfg.texts_per_forward)
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as root:
        trainer = _trainer(cfg, plan.on_cuda, precision, None, callbacks, 1.0, False, len(loader),
                           logger=False, progress=False, root_dir=root)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # few workers, no val loader, Tensor Core hints: all deliberate
            trainer.fit(module, train_dataloaders=loader)
    return trainer


# ---------------------------------------------------------------- 1. throughput and memory
def _fresh_memory(on_cuda: bool) -> None:
    gc.collect()
    if on_cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def cuda_context_mib() -> float:
    """GPU memory this process holds outside PyTorch's allocator (the CUDA context, cuBLAS workspaces)."""
    free, total = torch.cuda.mem_get_info()
    return (total - free - torch.cuda.memory_reserved()) / 2**20


def clock_rates(clock: StepClock, encoder, shape: dict, peak_tflops: float) -> dict:
    """What a timed training window gave: pairs and real tokens per second, the real tokens' share of
    what the encoder was fed, useful TFLOP/s (real tokens only) and its share of the peak."""
    lengths = clock.real_lengths()
    flops = train_flops(lengths, non_embedding_params(encoder), shape["num_hidden_layers"], shape["hidden_size"])
    return {"seconds": round(clock.seconds, 4), "pairs_per_s": clock.pairs / clock.seconds,
            "real_tokens_per_s": float(lengths.sum()) / clock.seconds, "real_token_share": float(lengths.sum()) / clock.padded,
            "useful_tflops": flops / clock.seconds / 1e12, "peak_share": flops / clock.seconds / 1e12 / peak_tflops,
            "losses_finite": bool(np.isfinite(clock.losses).all())}


def measure_setting(template, shape: dict, inputs: FoldInputs, precision: str, max_length: int, chunk: int | None,
                    plan: Plan, peak_tflops: float) -> dict:
    cfg = TrainConfig(batch_size=BATCH, texts_per_forward=chunk, precision=precision, epochs=1)
    n_batches = plan.warmup + plan.timed
    _fresh_memory(plan.on_cuda)
    module = ranker(copy.deepcopy(template), cfg, n_batches)
    clock = StepClock(plan.warmup)
    fit_batches(module, with_votes(inputs, n_batches * BATCH), cfg, max_length, plan, [clock])
    row = {"precision": precision, "max_length": max_length, "texts_per_forward": chunk, "batch_size": BATCH,
           "timed_batches": plan.timed, **clock_rates(clock, module.encoder, shape, peak_tflops)}
    if plan.on_cuda:
        row["peak_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
        row["peak_reserved_mib"] = torch.cuda.max_memory_reserved() / 2**20
        row["cuda_context_mib"] = cuda_context_mib()  # after the run: lazily loaded kernels grow it
    del module, clock
    _fresh_memory(plan.on_cuda)
    return row


def trials_per_gpu(row: dict, context_mib: float, total_mib: float) -> tuple[int, float | None]:
    """How many such trial processes fit in the GPU's memory (each: its peak reserved + a CUDA context)."""
    k = int(total_mib // (row["peak_reserved_mib"] + context_mib))
    return k, (round(1 / k, 4) if k else None)


def attempt(what: str, plan: Plan, errors: list, measure) -> dict | None:
    """measure() for one setting, when the time left allows it; one that fails (out of memory, say) is
    recorded in `errors` and gives None: the other settings are still worth their device time."""
    if not plan.time_left(what):
        return None
    try:
        return measure()
    except Exception:
        log.exception("%s failed", what)
        errors.append(f"{what}: {traceback.format_exc(limit=8)}")
        _fresh_memory(plan.on_cuda)
        return None


def throughput(plan: Plan, inputs: FoldInputs, peak_tflops: float, report, errors: list) -> list[dict]:
    """Every setting in turn; one that fails (out of memory, say) is recorded in `errors` and the rest run."""
    rows = []
    total = torch.cuda.get_device_properties(0).total_memory / 2**20 if plan.on_cuda else None
    for name, shape in plan.shapes().items():
        template = build_encoder(shape)
        for max_length, chunk, precision in itertools.product(MAX_LENGTHS, CHUNKINGS, plan.precisions):
            what = f"throughput {name} {precision} max_length {max_length} texts_per_forward {chunk}"
            row = attempt(what, plan, errors, lambda: {"encoder": name, **measure_setting(  # noqa: B023 (called at once)
                template, shape, inputs, precision, max_length, chunk, plan, peak_tflops)})
            if row is None:
                continue
            if plan.on_cuda:
                row["trials_per_gpu"], row["gpus_per_trial"] = trials_per_gpu(row, row["cuda_context_mib"], total)
            log.info("%s: %.1f pairs/s, %.2f TFLOP/s", what, row["pairs_per_s"], row["useful_tflops"])
            rows.append(row)
            report()
        del template
    return rows


# ---------------------------------------------------------------- 1b. the Jigsaw notebook's loop on the same device
NOTEBOOK_MAX_LENGTH, NOTEBOOK_WORKERS = 128, 2  # the notebook's CONFIG: max_length 128, num_workers 2


def notebook_setting(shape: dict, inputs: FoldInputs, texts, tokenizer, precision: str, plan: Plan, peak_tflops: float) -> dict:
    """The notebook's training loop (benchmarks/throughput.py's NotebookDataset and NotebookModel: each
    pair's texts tokenised on access and padded to max_length, two forward passes through the pooler
    output, MarginRankingLoss) with the notebook's loader (batch 32, shuffled, 2 workers, pinned memory)
    and Trainer (one device, `precision`), over the same training votes as pairtune's rows."""
    from throughput import NotebookDataset, NotebookModel
    from torch.utils.data import DataLoader
    from transformers import BertConfig, BertModel

    n_batches = plan.warmup + plan.timed
    votes = with_votes(inputs, n_batches * BATCH)
    _fresh_memory(plan.on_cuda)
    torch.manual_seed(0)
    module = NotebookModel("built from a config", encoder=BertModel(BertConfig(**shape)))  # with the pooler the notebook reads
    data = NotebookDataset([texts[i] for i in votes.train_less], [texts[i] for i in votes.train_more], tokenizer,
                           NOTEBOOK_MAX_LENGTH)
    loader = DataLoader(data, batch_size=BATCH, shuffle=True, num_workers=NOTEBOOK_WORKERS, pin_memory=plan.on_cuda,
                        drop_last=True)
    clock = StepClock(plan.warmup)
    trainer = pl.Trainer(accelerator="gpu" if plan.on_cuda else "cpu", devices=1, precision=precision, max_steps=n_batches,
                         limit_val_batches=0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, callbacks=[clock])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, train_dataloaders=loader)
    row = {"precision": precision, "max_length": NOTEBOOK_MAX_LENGTH, "batch_size": BATCH, "timed_batches": plan.timed,
           **clock_rates(clock, module.model, shape, peak_tflops)}
    if plan.on_cuda:
        row["peak_reserved_mib"] = torch.cuda.max_memory_reserved() / 2**20
    del module, clock, trainer
    _fresh_memory(plan.on_cuda)
    return row


def notebook(plan: Plan, inputs: FoldInputs, texts, tokenizer, peak_tflops: float, report, errors: list) -> list[dict]:
    """The notebook's loop for each encoder shape and precision (its own is fp16 on a GPU), beside pairtune's rows."""
    rows = []
    for (name, shape), precision in itertools.product(plan.shapes().items(), plan.precisions):
        what = f"notebook {name} {precision} max_length {NOTEBOOK_MAX_LENGTH}"
        row = attempt(what, plan, errors, lambda: {"encoder": name, **notebook_setting(  # noqa: B023 (called at once)
            shape, inputs, texts, tokenizer, precision, plan, peak_tflops)})
        if row is None:
            continue
        log.info("%s: %.1f pairs/s, %.2f TFLOP/s", what, row["pairs_per_s"], row["useful_tflops"])
        rows.append(row)
        report()
    return rows


# ---------------------------------------------------------------- 2. two trial processes sharing the device
def _wait_for(paths: list[Path], procs: list, timeout: float, parent: int | None = None) -> None:
    """Until every path exists; raises when one of `procs` failed, on timeout, or (a worker) when the
    `parent` process is gone."""
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        failed = [p.args for p in procs if p.poll() not in (None, 0)]
        if parent is not None and os.getppid() != parent:
            raise SystemExit("gpu_check worker: the driving process is gone")
        if failed or time.monotonic() > deadline:
            raise RuntimeError(f"sharing worker failed or timed out waiting for {[p.name for p in paths]}: {failed}")
        time.sleep(0.02)


def _write_json(path: Path, value) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value, indent=1))
    tmp.rename(path)  # readers never see half a file


class SharingWorkers:
    """Two trial processes (this script, --worker) for the sharing test. They start first, so that their
    imports overlap the other measurements (they touch no GPU until told to run); `measure` then runs
    worker 0 alone, worker 1 alone and both at once, each `share_timed` timed batches after a warm-up."""

    def __init__(self, inputs: FoldInputs, args):
        self.sync = Path(tempfile.mkdtemp(prefix="gpu_check_share_"))
        t = inputs.tokens
        np.savez(self.sync / "inputs.npz", ids=t.ids, offsets=t.offsets, pad_id=t.pad_id, max_length=t.max_length,
                 less=inputs.train_less, more=inputs.train_more)
        flags = ["--sync", str(self.sync)] + (["--cpu"] if args.cpu else []) + (["--quick"] if args.quick else [])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        self.procs = [subprocess.Popen([sys.executable, __file__, "--worker", str(i), *flags], env=env) for i in (0, 1)]
        self.done = False

    def _go(self, phase: str, workers: tuple[int, ...]) -> list[dict]:
        for i in workers:
            (self.sync / f"go-{phase}-{i}").touch()
        _wait_for([self.sync / f"{phase}-{i}.json" for i in workers], self.procs, 300)
        return [json.loads((self.sync / f"{phase}-{i}.json").read_text()) for i in workers]

    def measure(self, plan: Plan) -> dict:
        _wait_for([self.sync / f"ready-{i}" for i in (0, 1)], self.procs, 300)
        alone = self._go("alone", (0,)) + self._go("alone", (1,))
        together = self._go("together", (0, 1))
        overlap = (min(r["wall1"] for r in together) - max(r["wall0"] for r in together)) / (
            max(r["wall1"] for r in together) - min(r["wall0"] for r in together))
        combined = sum(r["pairs_per_s"] for r in together)
        self.done = True
        return {"setting": {"encoder": "minilm-shaped", "precision": plan.precisions[0], "max_length": 128,
                            "texts_per_forward": None, "batch_size": BATCH, "timed_batches": plan.share_timed},
                "alone": alone, "together": together, "window_overlap": overlap, "combined_together_pairs_per_s": combined,
                "combined_vs_one_alone": combined / (sum(r["pairs_per_s"] for r in alone) / 2)}

    def close(self) -> None:
        for p in self.procs:
            try:
                p.wait(timeout=30 if self.done else 0)  # after their last phase they exit by themselves
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(self.sync, ignore_errors=True)


def worker(index: int, sync: Path, plan: Plan) -> None:
    """One trial process of the sharing test; told when to run through files in `sync`."""
    saved = np.load(sync / "inputs.npz")
    tokens = TokenizedTexts(saved["ids"], saved["offsets"], int(saved["pad_id"]), int(saved["max_length"]))
    empty = np.zeros(0, dtype=np.int64)
    n = (plan.warmup + plan.share_timed) * BATCH
    inputs = FoldInputs(tokens, np.resize(saved["less"], n), np.resize(saved["more"], n), empty, empty)
    cfg = TrainConfig(batch_size=BATCH, texts_per_forward=None, precision=plan.precisions[0], epochs=1)
    module = ranker(build_encoder(plan.shapes()["minilm-shaped"]), cfg, n // BATCH)
    parent = os.getppid()
    (sync / f"ready-{index}").touch()
    for phase in ("alone", "together"):
        _wait_for([sync / f"go-{phase}-{index}"], [], 600, parent)
        barrier = None
        if phase == "together":  # both start their timed batches at the same moment
            def barrier():
                (sync / f"warm-{index}").touch()
                _wait_for([sync / f"warm-{i}" for i in (0, 1)], [], 120, parent)
        clock = StepClock(plan.warmup, barrier)
        fit_batches(module, inputs, cfg, 128, plan, [clock])
        _write_json(sync / f"{phase}-{index}.json", {
            "worker": index, "pid": os.getpid(), "pairs_per_s": clock.pairs / clock.seconds, "seconds": clock.seconds,
            "wall0": clock.wall0, "wall1": clock.wall1, "forbidden_imports": [m for m in FORBIDDEN if m in sys.modules]})


# ---------------------------------------------------------------- 3. fp16 correctness
def training_run(plan: Plan, inputs: FoldInputs) -> tuple[PairwiseRanker, dict]:
    """A short run in the trial's precision from random weights: its loss should fall and stay finite."""
    precision = plan.precisions[0]
    n = plan.train_votes or len(inputs.train_less)
    inputs = FoldInputs(inputs.tokens, inputs.train_less[:n], inputs.train_more[:n], inputs.val_less, inputs.val_more)
    cfg = TrainConfig(batch_size=BATCH, texts_per_forward=None, precision=precision, epochs=plan.train_epochs,
                      lr=TRAIN_RUN_LR, warmup_ratio=0.1)
    module = ranker(build_encoder(plan.shapes()["minilm-shaped"]), cfg, steps_per_epoch(len(inputs.train_less), cfg) * cfg.epochs)
    clock = StepClock(warmup=1)
    fit_batches(module, inputs, cfg, 128, plan, [clock])
    losses = np.asarray(clock.losses)
    fifth = max(1, len(losses) // 5)
    scales = [s for s in clock.scales if s is not None]
    result = {"encoder": "minilm-shaped", "precision": precision, "steps": len(losses), "lr": cfg.lr,
              "loss_first_fifth": float(losses[:fifth].mean()), "loss_last_fifth": float(losses[-fifth:].mean()),
              "all_finite": bool(np.isfinite(losses).all()), "grad_scaler": bool(scales),
              "scale_first": scales[0] if scales else None, "scale_last": scales[-1] if scales else None,
              "scale_drops": int(sum(b < a for a, b in itertools.pairwise(scales))),  # each drop = one skipped step
              "losses": [round(x, 5) for x in losses.tolist()]}
    result["loss_fell"] = result["loss_last_fifth"] < result["loss_first_fifth"]
    return module, result


def validation_scores(module: PairwiseRanker, inputs: FoldInputs, precision: str, plan: Plan) -> tuple[np.ndarray, float]:
    """Every validation text's score and the agreement, through the project's validation step."""
    texts, less, more = inputs.val_texts()
    module.set_validation_votes(len(texts), less, more)
    cfg = TrainConfig(precision=precision, eval_batch_size=128)
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as root:
        trainer = _trainer(cfg, plan.on_cuda, resolve_precision(precision, plan.on_cuda), None, [], 1.0, True, 1,
                           logger=False, progress=False, root_dir=root)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer.validate(module, dataloaders=text_loader(inputs.tokens, texts, cfg.eval_batch_size, 128), verbose=False)
    return module._val_scores.detach().float().cpu().numpy(), float(trainer.callback_metrics[AGREEMENT])


def compare_scores(module: PairwiseRanker, inputs: FoldInputs, plan: Plan, encoder: str, weights: str) -> tuple[dict, np.ndarray]:
    """Validation scores in plan.low vs fp32, and the fp32 ones."""
    full, agree_full = validation_scores(module, inputs, "32-true", plan)
    low, agree_low = validation_scores(module, inputs, plan.low, plan)
    diff = np.abs(full - low)
    return {"encoder": encoder, "weights": weights, "precision": plan.low, "texts": len(full),
            "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()), "score_sd_fp32": float(full.std()),
            "spearman": spearman(low, full), "ties_fp32": int(len(full) - len(np.unique(full))),
            "ties_low": int(len(low) - len(np.unique(low))), "agreement_fp32": agree_full,
            "agreement_low": agree_low}, full


# ---------------------------------------------------------------- 4. the predict scoring path
def predict_scores(module, tokens: TokenizedTexts, max_length: int, precision: str, device: torch.device,
                   batch_size: int = 128) -> tuple[np.ndarray, float]:
    """`pairtune predict`'s scoring (model.scoring.score_tokens): scores in text order and the seconds it took."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    scores = score_tokens(module, tokens, max_length, precision, device, batch_size)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return scores, time.perf_counter() - start


def predict_path(module, texts: list[str], tokenizer, val_texts: np.ndarray, val_fp32: np.ndarray, plan: Plan) -> dict:
    device = torch.device("cuda" if plan.on_cuda else "cpu")
    texts = texts[: plan.predict_texts] if plan.predict_texts else texts
    tokens = tokenize_texts(texts, tokenizer, 128)  # as predict: tokenised at the model's max_length
    predict_scores(module, tokens, 128, "auto", device)  # warm-up (cuBLAS handles, autotuning)
    auto, auto_s = predict_scores(module, tokens, 128, "auto", device)  # `auto`: fp16 on CUDA, fp32 on CPU
    fp32, fp32_s = predict_scores(module, tokens, 128, "32-true", device)
    module.cpu()
    seen = val_texts[val_texts < len(texts)]  # validation texts among the scored ones
    return {"texts": len(texts), "batch_size": 128, "max_length": 128,
            "autocast": "fp16" if plan.on_cuda else "none (CPU)",
            "texts_per_s_auto": len(texts) / auto_s, "texts_per_s_fp32": len(texts) / fp32_s,
            "max_abs_diff_auto_vs_fp32": float(np.abs(auto - fp32).max()), "spearman_auto_vs_fp32": spearman(auto, fp32),
            "ties_auto": int(len(auto) - len(np.unique(auto))),
            "validation_texts_compared": len(seen),
            "max_abs_diff_fp32_vs_validation": float(np.abs(fp32[seen] - val_fp32[np.searchsorted(val_texts, seen)]).max())}


# ---------------------------------------------------------------- report
def _fmt(x, digits: int = 1) -> str:
    if x is None:
        return "-"
    return f"{x:,.{digits}f}" if isinstance(x, float) else str(x)


def _pct(x: float) -> str:
    return f"{x:.1%}"


def _table(title: str, header: list[str], rows: list[list]) -> list[str]:
    lines = [f"## {title}", "", "| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return [*lines, *("| " + " | ".join(str(c) for c in row) + " |" for row in rows), ""]


def _throughput_table(rows: list[dict]) -> list[str]:
    fp32 = {(r["encoder"], r["max_length"], r["texts_per_forward"]): r["pairs_per_s"] for r in rows if r["precision"] == "32-true"}
    header = ["encoder", "precision", "max_length", "texts_per_forward", "pairs/s", "vs fp32", "real tokens/s", "real share",
              "useful TFLOP/s", "% of peak", "peak alloc MiB", "peak reserved MiB", "trials per GPU", "gpus_per_trial"]
    table = []
    for r in rows:
        base = fp32.get((r["encoder"], r["max_length"], r["texts_per_forward"]))
        table.append([r["encoder"], r["precision"], r["max_length"], _fmt(r["texts_per_forward"]), _fmt(r["pairs_per_s"]),
                      f"{r['pairs_per_s'] / base:.2f}x" if base and r["precision"] != "32-true" else "-", _fmt(r["real_tokens_per_s"], 0),
                      _pct(r["real_token_share"]), _fmt(r["useful_tflops"], 2), _pct(r["peak_share"]),
                      _fmt(r.get("peak_allocated_mib"), 0), _fmt(r.get("peak_reserved_mib"), 0),
                      _fmt(r.get("trials_per_gpu")), _fmt(r.get("gpus_per_trial"), 4)])
    return _table("Training throughput (batch 32, AdamW, real texts)", header, table)


def _notebook_table(rows: list[dict], ours: list[dict]) -> list[str]:
    """The notebook's rows beside pairtune's at the same encoder and max_length (texts_per_forward null, as
    the GPU configs set): at the same precision, and at pairtune's faster one."""
    mine = {(r["encoder"], r["precision"]): r["pairs_per_s"] for r in ours
            if r["max_length"] == NOTEBOOK_MAX_LENGTH and r["texts_per_forward"] is None}
    header = ["encoder", "precision", "notebook pairs/s", "real share", "useful TFLOP/s", "pairtune pairs/s, same precision",
              "pairtune / notebook", "pairtune's best precision / notebook"]
    table = []
    for r in rows:
        same = mine.get((r["encoder"], r["precision"]))
        best = max((v for (e, _), v in mine.items() if e == r["encoder"]), default=None)
        table.append([r["encoder"], r["precision"], _fmt(r["pairs_per_s"]), _pct(r["real_token_share"]), _fmt(r["useful_tflops"], 2),
                      _fmt(same), f"{same / r['pairs_per_s']:.2f}x" if same else "-",
                      f"{best / r['pairs_per_s']:.2f}x" if best else "-"])
    return _table(f"The Jigsaw notebook's training loop on the same device (batch 32, max_length {NOTEBOOK_MAX_LENGTH}, "
                  f"{NOTEBOOK_WORKERS} loader workers)", header, table)


def _sharing_lines(share: dict) -> list[str]:
    s = share["setting"]
    rows = [[a["worker"], _fmt(a["pairs_per_s"]), _fmt(t["pairs_per_s"]), f"{t['pairs_per_s'] / a['pairs_per_s']:.2f}"]
            for a, t in zip(share["alone"], share["together"])]
    title = f"Two trial processes sharing the device ({s['encoder']}, {s['precision']}, max_length 128, texts_per_forward null)"
    lines = _table(title, ["worker", "pairs/s alone", "pairs/s together", "together / alone"], rows)
    note = (f"Both together: {_fmt(share['combined_together_pairs_per_s'])} pairs/s, {share['combined_vs_one_alone']:.2f}x "
            f"one trial alone; timed windows overlap {_pct(share['window_overlap'])}.")
    return [*lines, note, ""]


def markdown(result: dict) -> str:
    m = result["meta"]
    about = (f"{m['device']}; torch {m['torch']}, CUDA {m['cuda']}, transformers {m['transformers']}, Lightning {m['lightning']}. "
             f"{m['prepared'].get('votes')} Ruddit votes, fold 0 of 5: {m['train_votes']} training votes, {m['val_votes']} "
             f"validation votes over {m['val_texts']} texts. Peak {m['peak_tflops']:.3g} TFLOP/s: {m['peak_source']}"
             f"{'' if m['peak_is_this_device'] else ' (NOT this device: its share column is not meaningful)'}.")
    lines = [f"# GPU check ({m['mode']}), {m['date']}", "", about, ""]
    if result.get("throughput"):
        lines += _throughput_table(result["throughput"])
    if result.get("notebook"):
        lines += _notebook_table(result["notebook"], result.get("throughput") or [])
    if result.get("sharing"):
        lines += _sharing_lines(result["sharing"])
    if result.get("scores"):
        rows = [[s["encoder"], s["weights"], s["precision"], s["texts"], f"{s['max_abs_diff']:.2e}", f"{s['score_sd_fp32']:.3f}",
                 f"{s['spearman']:.5f}", s["ties_fp32"], s["ties_low"], f"{s['agreement_fp32']:.4f}", f"{s['agreement_low']:.4f}"]
                for s in result["scores"]]
        lines += _table("Reduced-precision validation scores vs fp32, same weights (head in fp32)",
                        ["encoder", "weights", "precision", "texts", "max abs diff", "score sd (fp32)", "Spearman", "ties fp32",
                         "ties reduced", "agreement fp32", "agreement reduced"], rows)
    run = result.get("training_run")
    if run:
        lines += _table(f"Training run ({run['precision']}, {run['encoder']}, from random weights, lr {run['lr']:g})",
                        ["steps", "loss, first fifth", "loss, last fifth", "fell", "all finite", "grad scale first -> last",
                         "scale drops"],
                        [[run["steps"], f"{run['loss_first_fifth']:.4f}", f"{run['loss_last_fifth']:.4f}", run["loss_fell"],
                          run["all_finite"], f"{_fmt(run['scale_first'], 0)} -> {_fmt(run['scale_last'], 0)}", run["scale_drops"]]])
    p = result.get("predict")
    if p:
        lines += _table("Predict scoring path (length-sorted batches of 128, inference_mode)",
                        ["texts", "autocast", "texts/s (auto)", "texts/s (fp32)", "max abs diff auto vs fp32", "Spearman",
                         "max abs diff fp32 vs validation"],
                        [[p["texts"], p["autocast"], _fmt(p["texts_per_s_auto"]), _fmt(p["texts_per_s_fp32"]),
                          f"{p['max_abs_diff_auto_vs_fp32']:.2e}", f"{p['spearman_auto_vs_fp32']:.5f}",
                          f"{p['max_abs_diff_fp32_vs_validation']:.2e}"]])
    for key, title in (("skipped", "Skipped (time budget)"), ("errors", "Errors")):
        if result.get(key):
            lines += [f"## {title}", "", *(f"- {x}" for x in result[key]), ""]
    return "\n".join(lines)


def write_report(result: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "gpu_check.json", result)
    (out / "gpu_check.md").write_text(markdown(result))


# ---------------------------------------------------------------- main
def metadata(plan: Plan, texts: list[str], inputs: FoldInputs, peak: float, peak_source: str, manifest: Path) -> dict:
    import transformers

    device = torch.cuda.get_device_name(0) if plan.on_cuda else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    return {"mode": ("gpu" if plan.on_cuda else "cpu") + (" quick" if plan.quick else ""),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "device": device,
            "torch": torch.__version__, "cuda": torch.version.cuda, "transformers": transformers.__version__,
            "lightning": pl.__version__, "python": platform.python_version(),
            "float32_matmul_precision": torch.get_float32_matmul_precision(), "peak_tflops": peak, "peak_source": peak_source,
            "peak_is_this_device": not plan.on_cuda or any(chip in device for chip in ("H200", "H100")),
            "prepared": json.loads(manifest.read_text()) if manifest.exists() else {}, "texts": len(texts),
            "train_votes": len(inputs.train_less), "val_votes": len(inputs.val_less), "val_texts": len(inputs.val_texts()[0]),
            "mean_tokens_at_128": float(inputs.tokens.lengths_at(128).mean()),
            "encoders": plan.shapes()}


def cpu_matmul_peak_tflops(size: int = 512, reps: int = 5) -> float:
    """On CPU the datasheet peak means nothing: the best fp32 matmul rate of this process instead."""
    return matmul_peak_flops(size, reps) / 1e12


def section(result: dict, name: str, out: Path, fn, *fn_args):
    """fn(*fn_args); an exception is recorded and the run goes on to the next part."""
    start = time.perf_counter()
    try:
        return fn(*fn_args)
    except Exception:  # one broken part must not cost the whole device run
        log.exception("%s failed", name)
        result["errors"].append(f"{name}: {traceback.format_exc(limit=8)}")
        return None
    finally:
        result["meta"].setdefault("section_s", {})[name] = round(time.perf_counter() - start, 1)
        write_report(result, out)


def run(args, plan: Plan) -> int:
    started, out = time.perf_counter(), args.out
    texts, inputs, tokenizer = load_data(args.data)
    peak, source = ((H200_FP16_DENSE_PEAK_TFLOPS, H200_PEAK_SOURCE) if plan.on_cuda
                    else (cpu_matmul_peak_tflops(), "this CPU's fp32 matmul rate, measured (512x512, best of 5)"))
    result = {"meta": metadata(plan, texts, inputs, peak, source, args.data / "manifest.json"), "errors": [],
              "skipped": plan.skipped, "throughput": [], "scores": []}
    workers = SharingWorkers(inputs, args)
    try:
        result["throughput"] = section(result, "throughput", out, throughput, plan, inputs, peak,
                                       functools.partial(write_report, result, out), result["errors"]) or []
        result["notebook"] = section(result, "notebook", out, notebook, plan, inputs, texts, tokenizer, peak,
                                     functools.partial(write_report, result, out), result["errors"]) or []
        module, result["training_run"] = section(result, "training run", out, training_run, plan, inputs) or (None, None)
        val_fp32 = None
        if module is not None and plan.time_left("scores minilm-shaped"):
            scored = section(result, "scores minilm-shaped", out, compare_scores, module, inputs, plan, "minilm-shaped",
                             "after the training run")
            if scored:
                row, val_fp32 = scored
                result["scores"].append(row)
        if plan.time_left("scores roberta-base-shaped"):
            untrained = ranker(build_encoder(plan.shapes()["roberta-base-shaped"]), TrainConfig(), 1)
            scored = section(result, "scores roberta-base-shaped", out, compare_scores, untrained, inputs, plan,
                             "roberta-base-shaped", "random")
            del untrained
            if scored:
                result["scores"].append(scored[0])
        if val_fp32 is not None and plan.time_left("predict"):
            result["predict"] = section(result, "predict", out, predict_path, module, texts, tokenizer,
                                        inputs.val_texts()[0], val_fp32, plan)
        del module
        _fresh_memory(plan.on_cuda)
        if plan.time_left("sharing"):
            result["sharing"] = section(result, "sharing", out, workers.measure, plan)
    finally:
        workers.close()
    result["meta"]["forbidden_imports"] = [m for m in FORBIDDEN if m in sys.modules]
    result["meta"]["wall_s"] = round(time.perf_counter() - started, 1)
    write_report(result, out)
    print(markdown(result))
    return 1 if result["errors"] or result["meta"]["forbidden_imports"] else 0


def quiet_lightning() -> None:
    """Lightning's own notices (GPU available, few loader workers) would drown the measurements."""
    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)


def make_plan(args) -> Plan:
    on_cuda = not args.cpu and cuda_usable()
    if not args.cpu and not on_cuda:
        raise SystemExit("no CUDA device is visible; run with --cpu --quick for the CPU mode")
    if args.cpu:
        torch.set_num_threads(args.threads)
    deadline = time.perf_counter() + args.budget_s
    if args.quick:
        return Plan(on_cuda, True, warmup=1, timed=2, share_timed=3, train_epochs=3, train_votes=480, predict_texts=200,
                    deadline=deadline)
    return Plan(on_cuda, False, warmup=5, timed=40, share_timed=200, train_epochs=3, train_votes=None, predict_texts=None,
                deadline=deadline)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA_DIR, help="the data folder benchmarks/gpu_check_prepare.py wrote")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="where gpu_check.json and gpu_check.md go")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU (fp32; bf16 autocast for the score check)")
    parser.add_argument("--quick", action="store_true", help="tiny shapes, few steps, small text sets")
    parser.add_argument("--threads", type=int, default=1, help="--cpu: torch threads per process")
    parser.add_argument("--budget-s", type=float, default=210.0, help="start no new measurement after this many seconds")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)  # a process of the sharing test
    parser.add_argument("--sync", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    quiet_lightning()
    plan = make_plan(args)
    if args.worker is not None:
        worker(args.worker, args.sync, plan)
        return 0
    return run(args, plan)


if __name__ == "__main__":
    sys.exit(main())
