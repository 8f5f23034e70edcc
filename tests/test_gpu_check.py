"""benchmarks/gpu_check.py's CPU mode, run as users run it: the prepare step, then `--cpu --quick` in
a subprocess. The JSON and the Markdown must hold every expected row, with finite numbers, so the GPU
check cannot rot between the rare runs on a GPU."""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import benchmark_module

ROOT = Path(__file__).resolve().parents[1]
ENCODERS = ("minilm-shaped", "roberta-base-shaped")

# 40-85 s on 2 cores (40 s idle, more when the machine is busy): the check and its two sharing workers each import torch, transformers and Lightning.
slow = pytest.mark.slow


def _finite(*values) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


@pytest.fixture(scope="module")
def quick_check(tmp_path_factory, ruddit_pairs) -> SimpleNamespace:
    tmp = tmp_path_factory.mktemp("gpu_check")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    prep = subprocess.run([sys.executable, "benchmarks/gpu_check_prepare.py", "--out", str(tmp / "data"), "--votes", "600"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert prep.returncode == 0, prep.stdout + prep.stderr
    run = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--cpu", "--quick", "--data", str(tmp / "data"),
                          "--out", str(tmp / "out")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return SimpleNamespace(result=json.loads((tmp / "out" / "gpu_check.json").read_text()),
                           markdown=(tmp / "out" / "gpu_check.md").read_text(), stdout=run.stdout, data=tmp / "data")


@slow
def test_prepared_data_is_small_and_has_the_tokenizer(quick_check):
    files = [p for p in quick_check.data.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"pairs.csv", "manifest.json", "tokenizer.json", "vocab.txt"}
    assert sum(p.stat().st_size for p in files) < 4 * 2**20  # well under the 64 MiB a device call may carry
    assert not any(p.suffix in (".safetensors", ".bin", ".pt") for p in files)  # no weights


@slow
def test_no_errors_nothing_skipped_and_only_data_and_model_imported(quick_check):
    r = quick_check.result
    assert r["errors"] == [] and r["skipped"] == []
    assert r["meta"]["forbidden_imports"] == []
    assert r["meta"]["mode"] == "cpu quick" and r["meta"]["train_votes"] > 0 and r["meta"]["val_texts"] > 0


@slow
def test_throughput_has_every_setting_with_finite_rates(quick_check):
    rows = quick_check.result["throughput"]
    settings = {(r["encoder"], r["max_length"], r["texts_per_forward"], r["precision"]) for r in rows}
    assert settings == set(itertools.product(ENCODERS, (128, 256), (None, 16), ("32-true",)))  # fp16 needs CUDA
    for r in rows:
        assert _finite(r["pairs_per_s"], r["real_tokens_per_s"], r["useful_tflops"], r["peak_share"]), r
        assert r["pairs_per_s"] > 0 and r["useful_tflops"] > 0 and 0 < r["real_token_share"] <= 1, r
        assert r["losses_finite"]
        assert "peak_allocated_mib" not in r and "trials_per_gpu" not in r  # GPU memory: CUDA only


@slow
def test_the_notebooks_loop_runs_beside_pairtunes_rows(quick_check):
    rows = quick_check.result["notebook"]
    assert {(r["encoder"], r["precision"]) for r in rows} == set(itertools.product(ENCODERS, ("32-true",)))
    for r in rows:
        assert r["max_length"] == 128 and r["batch_size"] == 32 and r["losses_finite"], r
        assert _finite(r["pairs_per_s"], r["real_tokens_per_s"], r["useful_tflops"]) and r["pairs_per_s"] > 0, r
        assert 0 < r["real_token_share"] < 1, r  # every text padded to max_length: some of it is padding
    for encoder in ENCODERS:  # beside pairtune's row of the same encoder, precision and max_length
        assert re.search(rf"\| {encoder} \| 32-true \| [\d,.]+ \| [\d.]+% \| [\d.]+ \| [\d,.]+ \| [\d.]+x \| [\d.]+x \|",
                         quick_check.markdown), quick_check.markdown


@slow
def test_fp32_vs_reduced_precision_scores_and_the_training_run(quick_check):
    scores = {s["encoder"]: s for s in quick_check.result["scores"]}
    assert set(scores) == set(ENCODERS)
    for s in scores.values():
        assert s["precision"] == "bf16-mixed"  # CPU autocast has no fp16
        assert _finite(s["max_abs_diff"], s["spearman"], s["agreement_fp32"], s["agreement_low"])
        assert s["max_abs_diff"] < 0.05 and s["spearman"] > 0.99
    run = quick_check.result["training_run"]
    assert run["all_finite"] and run["steps"] == len(run["losses"]) > 10
    assert run["loss_fell"], run["losses"]
    assert not run["grad_scaler"]  # 32-true on CPU; 16-mixed on CUDA has one


@slow
def test_predict_path_scores_as_validation_does(quick_check):
    p = quick_check.result["predict"]
    assert p["texts"] == 200 and p["validation_texts_compared"] > 0
    assert _finite(p["texts_per_s_auto"], p["texts_per_s_fp32"])
    assert p["max_abs_diff_auto_vs_fp32"] == 0.0  # no autocast on CPU
    assert p["max_abs_diff_fp32_vs_validation"] < 1e-4


@slow
def test_two_worker_processes_alone_and_together(quick_check):
    share = quick_check.result["sharing"]
    assert [r["worker"] for r in share["alone"]] == [r["worker"] for r in share["together"]] == [0, 1]
    assert len({r["pid"] for r in share["alone"]}) == 2
    for r in share["alone"] + share["together"]:
        assert _finite(r["pairs_per_s"]) and r["pairs_per_s"] > 0 and r["forbidden_imports"] == []
    assert 0 < share["window_overlap"] <= 1  # the barrier lines the timed windows up
    assert _finite(share["combined_vs_one_alone"])


@slow
def test_markdown_has_every_table_and_row(quick_check):
    md = quick_check.markdown
    for heading in ("## Training throughput", "## The Jigsaw notebook's training loop", "## Two trial processes sharing",
                    "## Reduced-precision validation scores", "## Training run", "## Predict scoring path"):
        assert heading in md
    for encoder in ENCODERS:
        assert md.count(f"| {encoder} | 32-true |") == 4 + 1  # pairtune's four settings, the notebook's one
    assert "nan" not in md.lower() and "## Errors" not in md
    assert md.strip() in quick_check.stdout  # the table is printed too


def test_markdown_of_a_gpu_shaped_result():
    """The rows only a CUDA run has (fp16, GPU memory, trials per GPU, the grad scaler) render too."""
    row = {"encoder": "minilm-shaped", "max_length": 128, "texts_per_forward": None, "real_tokens_per_s": 1e5,
           "real_token_share": 0.6, "useful_tflops": 50.0, "peak_share": 0.05, "peak_allocated_mib": 900.0,
           "peak_reserved_mib": 1000.0, "trials_per_gpu": 18, "gpus_per_trial": round(1 / 18, 4)}
    result = {
        "meta": {"mode": "gpu", "date": "2026-12-02", "device": "NVIDIA H200", "torch": "2.11", "cuda": "13.0",
                 "transformers": "5.17", "lightning": "2.6.6", "prepared": {"votes": 2000}, "train_votes": 1600,
                 "val_votes": 400, "val_texts": 527, "peak_tflops": 989.4, "peak_source": "datasheet",
                 "peak_is_this_device": True},
        "throughput": [{**row, "precision": "16-mixed", "pairs_per_s": 400.0}, {**row, "precision": "32-true", "pairs_per_s": 200.0}],
        "sharing": {"setting": {"encoder": "minilm-shaped", "precision": "16-mixed"}, "window_overlap": 0.95,
                    "alone": [{"worker": 0, "pairs_per_s": 400.0}, {"worker": 1, "pairs_per_s": 410.0}],
                    "together": [{"worker": 0, "pairs_per_s": 300.0}, {"worker": 1, "pairs_per_s": 310.0}],
                    "combined_together_pairs_per_s": 610.0, "combined_vs_one_alone": 1.51},
        "scores": [{"encoder": "minilm-shaped", "weights": "trained", "precision": "16-mixed", "texts": 527, "max_abs_diff": 1e-3,
                    "score_sd_fp32": 0.5, "spearman": 0.9999, "ties_fp32": 0, "ties_low": 0, "agreement_fp32": 0.6,
                    "agreement_low": 0.6}],
        "training_run": {"precision": "16-mixed", "encoder": "minilm-shaped", "lr": 3e-4, "steps": 150, "loss_first_fifth": 0.5,
                         "loss_last_fifth": 0.4, "loss_fell": True, "all_finite": True, "scale_first": 65536.0,
                         "scale_last": 32768.0, "scale_drops": 1},
        "predict": {"texts": 2629, "autocast": "fp16", "texts_per_s_auto": 9000.0, "texts_per_s_fp32": 4000.0,
                    "max_abs_diff_auto_vs_fp32": 1e-3, "spearman_auto_vs_fp32": 0.9999, "max_abs_diff_fp32_vs_validation": 1e-7},
        "notebook": [{"encoder": "minilm-shaped", "precision": "16-mixed", "max_length": 128, "pairs_per_s": 100.0,
                      "real_token_share": 0.35, "useful_tflops": 10.0}],
        "errors": [], "skipped": ["sharing"],
    }
    md = benchmark_module("gpu_check").markdown(result)
    # pairtune's fp16 row is 4.00x the notebook's fp16 one; its fp32 row is slower, so its best is the fp16 one
    assert "| minilm-shaped | 16-mixed | 100.0 | 35.0% | 10.00 | 400.0 | 4.00x | 4.00x |" in md
    assert "| minilm-shaped | 16-mixed | 128 | - | 400.0 | 2.00x | 100,000 | 60.0% | 50.00 | 5.0% | 900 | 1,000 | 18 | 0.0556 |" in md
    assert "| minilm-shaped | 32-true | 128 | - | 200.0 | - |" in md
    assert "| 0 | 400.0 | 300.0 | 0.75 |" in md and "1.51x one trial alone" in md
    assert "| 150 | 0.5000 | 0.4000 | True | True | 65,536 -> 32,768 | 1 |" in md
    assert "## Skipped (time budget)" in md and "NOT this device" not in md


@slow
def test_the_warm_up_diagnostic_times_each_batch_by_shape(quick_check, tmp_path):
    # benchmarks/gpu_warmup.py found cuDNN attention's per-shape cost on the H200; its CPU mode keeps it runnable.
    warmup = benchmark_module("gpu_warmup")
    assert warmup.main(["--cpu", "--quick", "--batches", "3", "--data", str(quick_check.data), "--out", str(tmp_path)]) == 0
    passes = {p["pass"]: p for p in json.loads((tmp_path / "gpu_warmup-32-true.json").read_text())["passes"]}
    assert list(passes) == ["same-1", "same-2", "new-seed", "fixed-length"]
    assert all(p["batches"] == 3 and _finite(p["pairs_per_s"], p["batch_s_sum"]) for p in passes.values())
    shapes = {name: [tuple(shape) for _, shape in p["per_batch"]] for name, p in passes.items()}
    assert shapes["same-2"] == shapes["same-1"] and passes["same-2"]["new_shapes"] == 0  # the same batches again
    assert passes["same-1"]["new_shapes"] == len(set(shapes["same-1"]))
    assert {length for _, length in shapes["fixed-length"]} == {128}  # every text padded to max_length
