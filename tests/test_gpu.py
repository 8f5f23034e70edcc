"""The CUDA paths: precision resolution, placement of a trial on the GPU, fp16 autocast scores against
fp32, and GPU memory released between two trainings in one process (as a reused trial process does).

Marked `gpu`: pyproject's addopts deselect them (`-m "not gpu"`); `python -m pytest -m gpu` selects
them, and without a CUDA device they are skipped with the reason. They need no tokenizer, weights or
data files: a tiny BERT built from a config and synthetic token ids.
"""

from __future__ import annotations

import gc

import numpy as np
import pytest
import torch

from data.loaders import FoldInputs
from data.tokens import TokenizedTexts
from model.config import ModelConfig, TrainConfig
from model.losses import spearman
from model.precision import cuda_usable, resolve_precision
from model.ranker import PairwiseRanker
from model.train import fit

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not cuda_usable(), reason="needs a CUDA GPU; none is visible")]

VOCAB, MAX_LENGTH = 1000, 64
MiB = 2**20


def tiny_encoder(seed: int = 0):
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=128)
    return BertModel(config, add_pooling_layer=False)


@pytest.fixture(scope="module")
def backbone(tmp_path_factory) -> str:
    directory = tmp_path_factory.mktemp("gpu") / "tiny-bert"
    tiny_encoder().save_pretrained(directory)
    return str(directory)


def synthetic_inputs(n_texts: int = 200, seed: int = 0) -> FoldInputs:
    """Texts of 4-60 ids framed by [CLS]=1 ... [SEP]=2 (pad 0); training votes among texts 0-149,
    validation votes among 150-199, so no text is on both sides."""
    rng = np.random.default_rng(seed)
    pieces = [np.concatenate([[1], rng.integers(5, VOCAB, n), [2]]).astype(np.int32) for n in rng.integers(4, 60, n_texts)]
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in pieces])]).astype(np.int64)
    tokens = TokenizedTexts(np.concatenate(pieces), offsets, pad_id=0, max_length=MAX_LENGTH)

    def votes(lo: int, hi: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        pairs = np.stack([rng.choice(np.arange(lo, hi), 2, replace=False) for _ in range(n)])
        return pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)

    (train_less, train_more), (val_less, val_more) = votes(0, 150, 256), votes(150, n_texts, 64)
    return FoldInputs(tokens, train_less, train_more, val_less, val_more)


def test_auto_precision_is_fp16_mixed_on_cuda():
    assert resolve_precision("auto") == "16-mixed"
    assert resolve_precision("16-mixed") == "16-mixed"
    assert resolve_precision("32-true") == "32-true"
    if torch.cuda.is_bf16_supported():
        assert resolve_precision("bf16-mixed") == "bf16-mixed"


def test_a_trial_trains_on_cuda_in_fp16_mixed(backbone):
    seen = []

    def on_result(result, module):
        seen.append((module.device.type, module.trainer.precision, module.encoder.embeddings.word_embeddings.weight.dtype,
                     module.head.weight.dtype, result.agreement))

    fit(ModelConfig(backbone=backbone), TrainConfig(epochs=1, batch_size=32, texts_per_forward=None), synthetic_inputs(),
        MAX_LENGTH, on_result=on_result)
    assert seen, "no validation ran"
    device, precision, encoder_dtype, head_dtype, agreement = seen[-1]
    assert (device, precision) == ("cuda", "16-mixed")
    assert encoder_dtype == head_dtype == torch.float32  # mixed precision keeps fp32 weights; autocast casts per op
    assert 0.0 <= agreement <= 1.0


def test_fp16_autocast_scores_match_fp32_and_the_head_stays_fp32():
    module = PairwiseRanker(ModelConfig(dropout=0.1), TrainConfig(), 1, encoder=tiny_encoder()).cuda().eval()
    inputs = synthetic_inputs()
    ids, mask = (t.cuda() for t in inputs.tokens.batch(np.arange(len(inputs.tokens)), MAX_LENGTH))
    dtypes = []  # of a feed-forward layer's output (the last hidden state leaves a LayerNorm, which autocast keeps fp32)
    module.encoder.encoder.layer[0].intermediate.dense.register_forward_hook(lambda m, args, out: dtypes.append(out.dtype))
    with torch.inference_mode():
        fp32 = module(ids, mask)
        with torch.autocast("cuda", dtype=torch.float16):
            fp16 = module(ids, mask)
    assert dtypes == [torch.float32, torch.float16]  # autocast was on for the encoder
    assert fp16.dtype == fp32.dtype == torch.float32  # the head ran in fp32
    fp16, fp32 = fp16.cpu().numpy(), fp32.cpu().numpy()
    assert np.abs(fp16 - fp32).max() < 0.02 * max(fp32.std(), 1e-3) + 1e-3
    assert spearman(fp16, fp32) > 0.99
    assert len(np.unique(fp16)) == len(np.unique(fp32))  # half precision created no ties


def _train_once(backbone: str) -> None:
    module, tracker = fit(ModelConfig(backbone=backbone), TrainConfig(epochs=1, batch_size=32), synthetic_inputs(), MAX_LENGTH)
    assert tracker.history
    del module, tracker


def test_gpu_memory_returns_to_its_start_between_two_trainings(backbone):
    _train_once(backbone)  # once-per-process allocations (cuBLAS workspaces) belong to the baseline
    gc.collect()
    torch.cuda.empty_cache()
    allocated, reserved = torch.cuda.memory_allocated(), torch.cuda.memory_reserved()
    for _ in range(2):  # each training must leave the GPU as it found it
        torch.cuda.reset_peak_memory_stats()
        _train_once(backbone)
        assert torch.cuda.max_memory_allocated() > allocated + MiB  # it did use the GPU
        gc.collect()
        torch.cuda.empty_cache()  # what a reused trial process does before its next trial
        assert torch.cuda.memory_allocated() - allocated < MiB
        assert torch.cuda.memory_reserved() - reserved < 4 * MiB
