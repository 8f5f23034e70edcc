"""`pairtune train`: final models from one configuration, no search.

    pairtune train BEST.yaml                one model on the config's fold (data.fold), best epoch kept
    pairtune train BEST.yaml --folds all    one model per fold, each in OUT/fold_K (a fold ensemble)
    pairtune train BEST.yaml --folds 0,2    the listed folds only
    pairtune train BEST.yaml --full         one model on all votes, no validation, train.epochs epochs

Every model directory is self-contained (weights, config, encoder config, tokenizer): see
model/checkpoint.py. `pairtune predict` takes a model directory or a fold ensemble directory.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import torch

from data import FoldSplit
from data.folds import cap_train_votes
from data.prepare import PreparedData
from model.backbone import load_tokenizer
from model.checkpoint import ENSEMBLE as ENSEMBLE_FILE
from model.checkpoint import FOLD_DIR, is_model_dir, save_checkpoint
from model.metrics import AGREEMENT
from model.precision import resolve_precision
from model.train import fit, set_threads
from search.config.parse import ConfigError, PairtuneConfig, with_params
from search.config.space import searched_dimensions
from search.runs import storage
from search.tune.preflight import preflight
from search.tune.prepare import load_split, pair_fold, prepare_data

log = logging.getLogger(__name__)


def parse_folds(spec: str | None, cfg: PairtuneConfig) -> list[int] | None:
    """`all`, or a comma-separated list of fold numbers; None (no --folds) means the config's fold."""
    if spec is None:
        return None
    n = cfg.data.folds
    if spec.strip() == "all":
        return list(range(n))
    try:
        folds = [int(part) for part in spec.split(",") if part.strip()]
    except ValueError:
        raise ConfigError([f"--folds {spec}: expected 'all' or fold numbers like 0,2"]) from None
    bad = [k for k in folds if not 0 <= k < n]
    if not folds or bad:
        raise ConfigError([f"--folds {spec}: folds must be in 0..{n - 1} (data.folds is {n} in {cfg.source})"])
    return sorted(set(folds))


def _on_fold(prepared: PreparedData, cfg: PairtuneConfig) -> PreparedData:
    """prepared, on cfg's fold. Pair votes: the already read votes, split again (fold assignment is
    deterministic given data.split_seed). Scored data: the fold's pairs are derived inside its own
    text split, exactly as the search did (load_split); the texts, hence the tokens, are the same."""
    d = cfg.data
    if d.format != "pairs":
        votes, split = load_split(cfg)
        return dataclasses.replace(prepared, votes=votes, split=split)
    if d.fold == prepared.split.fold:
        return prepared
    return dataclasses.replace(prepared, split=pair_fold(cfg, prepared.votes, prepared.tokens))


def _train_fold(cfg: PairtuneConfig, prepared: PreparedData, out_dir: Path, tokenizer) -> dict:
    config = cfg.to_dict()

    def on_result(r, module) -> None:
        log.info("fold %d, epoch %.2f: %s %.4f, val loss %.4f", cfg.data.fold, r.epoch, AGREEMENT, r.agreement, r.val_loss)
        if r.is_best:  # by search.metric, as the search picked its best checkpoint
            metrics = {**r.metrics, AGREEMENT: r.agreement, "epoch": r.epoch, "step": r.step, "fold": cfg.data.fold}
            save_checkpoint(out_dir, module, config, metrics, tokenizer)

    _, tracker = fit(cfg.model, cfg.train, prepared.fold_inputs(cfg.model.backbone, cfg.data.lowercase), cfg.data.max_length, on_result,
                     root_dir=str(out_dir), progress=f"fold {cfg.data.fold}", monitor=cfg.search.metric)
    best = [r for r in tracker.history if r.is_best][-1]
    return {"metric": cfg.search.metric, "fold": cfg.data.fold, "best_value": best.value,
            "best_agreement": best.agreement, "best_epoch": best.epoch,
            "checkpoint": str(out_dir), "history": tracker.history, "data": prepared.summary()}


def _train_full(cfg: PairtuneConfig, prepared: PreparedData, out_dir: Path, tokenizer) -> dict:
    """All votes (after data.max_votes / max_train_votes), no validation: the model after the last epoch."""
    n = prepared.votes.n_votes
    split = FoldSplit(fold=-1, n_folds=cfg.data.folds, method="all votes", train_votes=np.arange(n),
                      val_votes=np.zeros(0, dtype=np.int64), dropped_votes=0)
    split = cap_train_votes(split, cfg.data.max_train_votes, cfg.data.split_seed)
    prepared = dataclasses.replace(prepared, split=split)
    log.info("training on all %d votes with no validation: %d epochs (train.epochs), no early stopping; "
             "the model after the last epoch is saved", len(split.train_votes), cfg.train.epochs)
    module, _ = fit(cfg.model, cfg.train, prepared.fold_inputs(cfg.model.backbone, cfg.data.lowercase), cfg.data.max_length, root_dir=str(out_dir), progress="all votes")
    metrics = {"trained_on": "all votes", "votes": len(split.train_votes), "epochs": cfg.train.epochs,
               "step": int(module.global_step)}
    save_checkpoint(out_dir, module, cfg.to_dict(), metrics, tokenizer)
    return {"full": True, "votes": metrics["votes"], "epochs": cfg.train.epochs, "checkpoint": str(out_dir),
            "data": prepared.summary()}


def _check_out_dir(out_dir: Path, folds: list[int]) -> None:
    """A fold ensemble directory must not mix in fold models from an earlier run."""
    stale = sorted(p.name for p in out_dir.glob("fold_*") if is_model_dir(p) and p.name not in {FOLD_DIR.format(k) for k in folds})
    if stale:
        what = "use another --out, train those folds too, or remove them"
        raise ConfigError([f"{out_dir}: already holds {', '.join(stale)}, which this run would not replace; {what}"])


def train_config(cfg: PairtuneConfig, out: str | None = None, folds: list[int] | None = None, full: bool = False) -> dict:
    """Train cfg's fixed values: on its fold (default), on each of `folds` (to OUT/fold_K), or on
    all votes (full). Every model directory gets the tokenizer and encoder config. Training uses
    search.cpus_per_trial threads, as a trial does, so an exported best.yaml trains exactly as its
    trial did (another thread count changes float sums, so results can drift)."""
    threads = torch.get_num_threads()
    set_threads(cfg.search.cpus_per_trial)
    try:
        return _train_config(cfg, out, folds, full)
    finally:
        torch.set_num_threads(threads)  # a caller in this process keeps its own


def _train_config(cfg: PairtuneConfig, out: str | None, folds: list[int] | None, full: bool) -> dict:
    if folds is not None and full:
        raise ConfigError(["--folds and --full exclude each other: a fold model validates, a full model does not"])
    if searched_dimensions(cfg):
        log.warning("search.space is ignored by train: using the fixed values of %s", cfg.source)
    cfg = with_params(cfg, {})  # the fixed values alone: no search space, no first points
    preflight(cfg)
    resolve_precision(cfg.train.precision)  # fails now, not after loading data
    out_dir = Path(out or Path("pairtune_train") / cfg.search.name).resolve()
    storage.require_writable(out_dir, keep=False)  # now: the first save comes after an epoch of training
    if folds is not None:
        _check_out_dir(out_dir, folds)
        # An earlier run's manifest would make a half-retrained directory look like a whole ensemble
        # if this run stops early; a new one is written after the last fold.
        (out_dir / ENSEMBLE_FILE).unlink(missing_ok=True)
    prepared = prepare_data(cfg)
    tokenizer = load_tokenizer(cfg.model.backbone)
    if full:
        return _train_full(cfg, prepared, out_dir, tokenizer)
    if folds is None:
        return _train_fold(cfg, prepared, out_dir, tokenizer)
    results = []
    for k in folds:
        cfg_k = with_params(cfg, {"data.fold": k})
        prepared_k = _on_fold(prepared, cfg_k)
        results.append(_train_fold(cfg_k, prepared_k, out_dir / FOLD_DIR.format(k), tokenizer))
    scores = [r["best_agreement"] for r in results]
    summary = {
        "metric": AGREEMENT,
        "folds": {str(r["fold"]): {"best_agreement": r["best_agreement"], "best_epoch": r["best_epoch"],
                                   "val_votes": r["data"]["val_votes"], "train_votes": r["data"]["train_votes"]}
                  for r in results},
        "mean_agreement": float(np.mean(scores)),
        "std_agreement": float(np.std(scores)),
    }
    (out_dir / ENSEMBLE_FILE).write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return {**summary, "ensemble": True, "checkpoint": str(out_dir), "folds": results}
