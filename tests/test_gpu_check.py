"""benchmarks/gpu_check.py's CPU mode, run as users run it: the prepare step, then `--cpu --quick` in
a subprocess. The JSON and the Markdown must hold every expected row, with finite numbers, so the GPU
check cannot rot between the rare runs on a GPU."""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENCODERS = ("minilm-shaped", "roberta-base-shaped")

# About a minute on 2 cores: the check and its two sharing workers each import torch, transformers and Lightning.
pytestmark = pytest.mark.slow


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


def test_prepared_data_is_small_and_has_the_tokenizer(quick_check):
    files = [p for p in quick_check.data.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"pairs.csv", "manifest.json", "tokenizer.json", "vocab.txt"}
    assert sum(p.stat().st_size for p in files) < 4 * 2**20  # well under the 64 MiB a device call may carry
    assert not any(p.suffix in (".safetensors", ".bin", ".pt") for p in files)  # no weights


def test_no_errors_nothing_skipped_and_only_data_and_model_imported(quick_check):
    r = quick_check.result
    assert r["errors"] == [] and r["skipped"] == []
    assert r["meta"]["forbidden_imports"] == []
    assert r["meta"]["mode"] == "cpu quick" and r["meta"]["train_votes"] > 0 and r["meta"]["val_texts"] > 0


def test_throughput_has_every_setting_with_finite_rates(quick_check):
    rows = quick_check.result["throughput"]
    settings = {(r["encoder"], r["max_length"], r["texts_per_forward"], r["precision"]) for r in rows}
    assert settings == set(itertools.product(ENCODERS, (128, 256), (None, 16), ("32-true",)))  # fp16 needs CUDA
    for r in rows:
        assert _finite(r["pairs_per_s"], r["real_tokens_per_s"], r["useful_tflops"], r["peak_share"]), r
        assert r["pairs_per_s"] > 0 and r["useful_tflops"] > 0 and 0 < r["real_token_share"] <= 1, r
        assert r["losses_finite"]
        assert "peak_allocated_mib" not in r and "trials_per_gpu" not in r  # GPU memory: CUDA only


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


def test_predict_path_scores_as_validation_does(quick_check):
    p = quick_check.result["predict"]
    assert p["texts"] == 200 and p["validation_texts_compared"] > 0
    assert _finite(p["texts_per_s_auto"], p["texts_per_s_fp32"])
    assert p["max_abs_diff_auto_vs_fp32"] == 0.0  # no autocast on CPU
    assert p["max_abs_diff_fp32_vs_validation"] < 1e-4


def test_two_worker_processes_alone_and_together(quick_check):
    share = quick_check.result["sharing"]
    assert [r["worker"] for r in share["alone"]] == [r["worker"] for r in share["together"]] == [0, 1]
    assert len({r["pid"] for r in share["alone"]}) == 2
    for r in share["alone"] + share["together"]:
        assert _finite(r["pairs_per_s"]) and r["pairs_per_s"] > 0 and r["forbidden_imports"] == []
    assert 0 < share["window_overlap"] <= 1  # the barrier lines the timed windows up
    assert _finite(share["combined_vs_one_alone"])


def test_markdown_has_every_table_and_row(quick_check):
    md = quick_check.markdown
    for heading in ("## Training throughput", "## Two trial processes sharing", "## Reduced-precision validation scores",
                    "## Training run", "## Predict scoring path"):
        assert heading in md
    for encoder in ENCODERS:
        assert md.count(f"| {encoder} | 32-true |") == 4
    assert "nan" not in md.lower() and "## Errors" not in md
    assert md.strip() in quick_check.stdout  # the table is printed too
