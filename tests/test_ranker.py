"""The trainable on a tiny BERT: fast paths agree with the notebook's plain path, training learns."""

import numpy as np
import pytest
import torch

from data import make_fold, read_pairs, subsample_votes, tokenize_texts
from data.loaders import FoldInputs, _VoteCollate, text_loader
from model.backbone import load_tokenizer
from model.config import ModelConfig, TrainConfig
from model.epochs import validation_epochs
from model.losses import pairwise_agreement, pairwise_loss
from model.precision import PrecisionError, resolve_precision
from model.ranker import PairwiseRanker, lr_lambda
from model.train import fit


@pytest.fixture(scope="module")
def fold_data(tiny_backbone, ruddit_pairs):
    votes = subsample_votes(read_pairs(ruddit_pairs), 1200, seed=0)
    split = make_fold(votes, 4, 0, seed=0)
    tokens = tokenize_texts(votes.texts, load_tokenizer(tiny_backbone), max_length=64)
    t, v = split.train_votes, split.val_votes
    return votes, FoldInputs(tokens, votes.less[t], votes.more[t], votes.less[v], votes.more[v])


def plain_scores(module, tokenizer, texts, max_length):
    """The notebook's way: every text padded to max_length, one forward pass per side."""
    enc = tokenizer(texts, truncation=True, max_length=max_length, padding="max_length", return_tensors="pt")
    return module(enc["input_ids"], enc["attention_mask"])


@pytest.mark.parametrize("pooling", ["mean", "cls", "pooler"])
def test_deduplicated_dynamic_padding_batch_matches_plain_pairs(tiny_backbone, fold_data, pooling):
    votes, data = fold_data
    module = PairwiseRanker(ModelConfig(backbone=tiny_backbone, pooling=pooling), TrainConfig(), total_steps=1).eval()
    picked = list(range(24)) + [0, 1, 2]  # repeated votes: shared texts are scored once
    batch = _VoteCollate(data, max_length=64)(picked)
    assert batch["input_ids"].shape[0] < 2 * len(picked) and batch["input_ids"].shape[1] <= 64
    tok = load_tokenizer(tiny_backbone)
    with torch.no_grad():
        scores = module(batch["input_ids"], batch["attention_mask"])
        fast_more, fast_less = scores[batch["more"]], scores[batch["less"]]
        plain_more = plain_scores(module, tok, [votes.texts[i] for i in data.train_more[picked]], 64)
        plain_less = plain_scores(module, tok, [votes.texts[i] for i in data.train_less[picked]], 64)
    assert torch.allclose(fast_more, plain_more, atol=1e-5) and torch.allclose(fast_less, plain_less, atol=1e-5)
    for kind in ("margin", "logistic"):
        fast, plain = pairwise_loss(kind, fast_more, fast_less), pairwise_loss(kind, plain_more, plain_less)
        assert torch.allclose(fast, plain, atol=1e-6)


def test_pooler_pooling_reads_the_backbones_pretrained_pooler_and_survives_a_checkpoint(tiny_backbone, tmp_path):
    """model.pooling pooler scores head(tanh(W h_cls + b)) with the backbone's own pooler weights (the
    Jigsaw notebook's pooler output), not a freshly initialised layer, and a saved model keeps it."""
    from pathlib import Path

    from safetensors.torch import load_file

    from model.checkpoint import load_checkpoint, save_checkpoint
    from search.config.parse import parse_config

    module = PairwiseRanker(ModelConfig(backbone=tiny_backbone, pooling="pooler"), TrainConfig(), total_steps=1).eval()
    saved = load_file(Path(tiny_backbone) / "model.safetensors")
    for part in ("weight", "bias"):
        key = next(k for k in saved if k.endswith(f"pooler.dense.{part}"))
        assert torch.equal(getattr(module.encoder.pooler.dense, part), saved[key])
    tok = load_tokenizer(tiny_backbone)
    enc = tok(["a kind word", "a much longer and rather rude comment"], padding=True, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    with torch.no_grad():
        first = module.encoder(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0]
        expected = module.head(torch.tanh(module.encoder.pooler.dense(first))).squeeze(-1)
        scores = module(ids, mask)
        cls = PairwiseRanker(ModelConfig(backbone=tiny_backbone, pooling="cls"), TrainConfig(), total_steps=1).eval()
        cls.head.load_state_dict(module.head.state_dict())
        assert not torch.allclose(cls(ids, mask), scores)  # the pooler is not the first token as it is
    assert torch.allclose(scores, expected, atol=1e-6)
    cfg = parse_config({"model": {"backbone": tiny_backbone, "pooling": "pooler"}}, "mem").to_dict()
    save_checkpoint(tmp_path / "m", module, cfg, {}, tokenizer=tok)
    loaded, _ = load_checkpoint(tmp_path / "m")
    with torch.no_grad():
        assert torch.equal(loaded(ids, mask), scores)


def test_validation_scores_each_text_once_and_matches_per_vote_scoring(tiny_backbone, fold_data):
    votes, data = fold_data
    module = PairwiseRanker(ModelConfig(backbone=tiny_backbone), TrainConfig(), total_steps=1).eval()
    texts, less_pos, more_pos = data.val_texts()
    assert len(texts) == len(set(data.val_less.tolist()) | set(data.val_more.tolist()))
    scores = torch.full((len(texts),), float("nan"))
    seen = 0
    with torch.no_grad():
        for batch in text_loader(data.tokens, texts, batch_size=7, max_length=64):
            scores[batch["position"]] = module(batch["input_ids"], batch["attention_mask"])
            seen += len(batch["position"])
        assert seen == len(texts) and not torch.isnan(scores).any()
        fast = pairwise_agreement(scores, torch.from_numpy(less_pos), torch.from_numpy(more_pos))
        tok = load_tokenizer(tiny_backbone)
        less_txt = [votes.texts[i] for i in data.val_less]
        more_txt = [votes.texts[i] for i in data.val_more]
        s_less, s_more = plain_scores(module, tok, less_txt, 64), plain_scores(module, tok, more_txt, 64)
    plain = (s_more > s_less).double().mean().item()
    assert fast == pytest.approx(plain, abs=2 / len(less_txt))  # at most a near-tie may flip


def test_training_improves_agreement_and_reports_each_epoch(tiny_backbone, fold_data):
    _, data = fold_data
    results = []
    cfg = TrainConfig(lr=1e-3, epochs=2, batch_size=32, val_every_n_steps=10, seed=1)
    module, tracker = fit(ModelConfig(backbone=tiny_backbone), cfg, data, 64, lambda r, m: results.append(r))
    epochs = [r.epoch for r in results]
    assert epochs == sorted(epochs) and epochs[-1] == 2.0 and len(epochs) > 2  # intra-epoch + epoch ends
    assert epochs[:3] == [round(10 / 29, 4), round(20 / 29, 4), 1.0]  # 900 votes: 29 batches an epoch
    assert epochs == validation_epochs(len(data.train_less), cfg)  # what a search checks against ASHA's rungs
    assert results[-1].final and not results[0].final
    texts, less, more = data.val_texts()
    for r in results:  # each validation's scores, one per validation text: what a trial keeps of its best
        assert r.scores.shape == (len(texts),) and r.scores.dtype == np.float32
        assert pairwise_agreement(torch.from_numpy(r.scores), torch.from_numpy(less), torch.from_numpy(more)) == pytest.approx(r.agreement, abs=1e-6)  # logged as float32
    # Learned: better than the same model untrained (same seed, same validation votes).
    import pytorch_lightning as pl

    pl.seed_everything(1, verbose=False)
    untrained = PairwiseRanker(ModelConfig(backbone=tiny_backbone), cfg, total_steps=1).eval()
    texts, less, more = data.val_texts()
    scores = torch.empty(len(texts))
    with torch.no_grad():
        for batch in text_loader(data.tokens, texts, 64, 64):
            scores[batch["position"]] = untrained(batch["input_ids"], batch["attention_mask"])
    before = pairwise_agreement(scores, torch.from_numpy(less), torch.from_numpy(more))
    assert max(r.agreement for r in results) > before + 0.03, (before, [r.agreement for r in results])


def test_each_result_says_where_the_runs_wall_time_went(tiny_backbone, fold_data):
    """start-up (the imports given, then to the first step), training, validation and on_result's own
    time: non-negative, never shrinking, and together the run's wall time; a resumed run goes on from
    its checkpoint's parts."""
    import time

    _, data = fold_data
    results, waited = [], 0.2
    cfg = TrainConfig(lr=1e-3, epochs=2, batch_size=32, val_every_n_steps=10, seed=1)

    def slow_report(r, m):  # a report that takes `waited` seconds, as a checkpoint upload may
        results.append((r, time.perf_counter()))
        time.sleep(waited)

    started = time.perf_counter()
    _, tracker = fit(ModelConfig(backbone=tiny_backbone), cfg, data, 64, slow_report, started_at=started, imports_s=5.0)
    parts = [r.spent for r, _ in results]
    assert all(set(p) == {"startup_s", "train_s", "val_s", "report_s"} and min(p.values()) >= 0 for p in parts)
    assert all(parts[0]["startup_s"] == p["startup_s"] >= 5.0 for p in parts)  # the imports counted once
    for before, after in zip(parts, parts[1:]):
        assert all(after[k] >= before[k] for k in before)
    for i, (r, at) in enumerate(results):  # wall time to this result: all parts (its own report not yet)
        assert sum(r.spent.values()) - 5.0 == pytest.approx(at - started, abs=0.05)
        assert r.spent["report_s"] == pytest.approx(i * waited, abs=0.05)
    assert parts[-1]["train_s"] > 0 and parts[-1]["val_s"] > 0
    state = tracker.state_dict()  # what a checkpoint saves; a resumed run starts from it
    again = type(tracker)(1, lambda r, m: None, time.perf_counter())
    again.load_state_dict(state)
    assert again.spent == tracker.spent and again.spent["report_s"] >= len(results) * waited


def test_early_stopping_after_a_per_epoch_validation_marks_it_final(tiny_backbone, fold_data):
    """Early stopping decides at the validation it follows, so that validation says training is over
    (the leaderboard's early_stopping, a COMPLETE trial for TPE), not at the epoch's end after it."""
    _, data = fold_data
    results = []
    cfg = TrainConfig(lr=1e-12, epochs=4, batch_size=64, schedule="constant", early_stopping_patience=1, seed=1)
    fit(ModelConfig(backbone=tiny_backbone), cfg, data, 64, lambda r, m: results.append(r))
    assert [r.epoch for r in results] == [1.0, 2.0]  # no better value at epoch 2: patience 1 stops there
    assert results[-1].final and not results[0].final


def test_encoder_trains_with_its_dropout_on(tiny_backbone):
    # from_pretrained hands back an encoder in eval mode; training it so would silently drop dropout.
    module = PairwiseRanker(ModelConfig(backbone=tiny_backbone), TrainConfig(), total_steps=1)
    assert module.training and all(m.training for m in module.encoder.modules())


def test_the_encoder_never_runs_cudnn_attention(tiny_backbone):
    # cuDNN attention builds a plan per new batch shape (~150 ms each on an H200 under fp16): every score
    # the ranker gives (training, validation, predict) goes through forward, which keeps it out.
    module = PairwiseRanker(ModelConfig(backbone=tiny_backbone), TrainConfig(), total_steps=1)
    during = []
    module.encoder.register_forward_pre_hook(lambda *_: during.append(torch.backends.cuda.cudnn_sdp_enabled()))
    assert torch.backends.cuda.cudnn_sdp_enabled()  # PyTorch's default, which the ranker leaves as it found it
    module(torch.ones(2, 5, dtype=torch.long), torch.ones(2, 5, dtype=torch.long))
    assert during == [False]
    assert torch.backends.cuda.cudnn_sdp_enabled() and torch.backends.cuda.flash_sdp_enabled()


def test_nan_loss_stops_the_trial_with_a_clear_error(tiny_backbone, fold_data):
    _, data = fold_data
    cfg = TrainConfig(lr=1e30, epochs=1, gradient_clip_val=None, schedule="constant")
    with pytest.raises(FloatingPointError, match="training loss became"):
        fit(ModelConfig(backbone=tiny_backbone), cfg, data, 64)


def test_schedules():
    cos = lr_lambda("cosine", total_steps=100, warmup_steps=10, floor=0.01)
    assert cos(0) == pytest.approx(0.1) and cos(9) == pytest.approx(1.0)
    assert cos(10) == pytest.approx(1.0) and cos(100) == pytest.approx(0.01)
    lin = lr_lambda("linear", 100, 0, 0.0)
    assert lin(50) == pytest.approx(0.5)
    assert lr_lambda("constant", 100, 0, 0.0)(99) == 1.0


def test_precision_auto_falls_back_to_fp32_on_cpu():
    assert resolve_precision("auto", on_cuda=False) == "32-true"
    assert resolve_precision("auto", on_cuda=True) == "16-mixed"
    assert resolve_precision("32-true", on_cuda=False) == "32-true"
    with pytest.raises(PrecisionError, match="16-mixed needs a CUDA GPU"):
        resolve_precision("16-mixed", on_cuda=False)


@pytest.mark.parametrize("texts_per_forward", [5, 16])
def test_length_sorted_chunks_give_the_same_scores_and_loss(tiny_backbone, fold_data, texts_per_forward):
    _, data = fold_data
    module = PairwiseRanker(ModelConfig(backbone=tiny_backbone), TrainConfig(), total_steps=1).eval()
    picked = list(range(40))
    whole = _VoteCollate(data, 64)(picked)
    chunked = _VoteCollate(data, 64, texts_per_forward)(picked)
    assert "chunks" in chunked and len(chunked["chunks"]) > 1
    padded = lambda b: sum(m.numel() for _, m in b["chunks"]) if "chunks" in b else b["attention_mask"].numel()  # noqa: E731
    assert padded(chunked) < padded(whole)
    with torch.no_grad():
        a, b = module._step_scores(whole), module._step_scores(chunked)
    assert torch.allclose(a[whole["more"]], b[chunked["more"]], atol=1e-5)
    assert torch.allclose(a[whole["less"]], b[chunked["less"]], atol=1e-5)
    for kind in ("margin", "logistic"):
        la = pairwise_loss(kind, a[whole["more"]], a[whole["less"]])
        lb = pairwise_loss(kind, b[chunked["more"]], b[chunked["less"]])
        assert torch.allclose(la, lb, atol=1e-6)
