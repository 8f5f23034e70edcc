"""`pairtune train`: one configuration, no search, best epoch saved."""

from __future__ import annotations

import logging
from pathlib import Path

from model.checkpoint import save_checkpoint
from model.precision import resolve_precision
from model.ranker import AGREEMENT
from model.train import fit, set_threads
from search.config import PairtuneConfig
from search.prepare import PreparedData, load_split
from search.space import searched_dimensions
from search.tuner import preflight

log = logging.getLogger(__name__)


def train_config(cfg: PairtuneConfig, out: str | None = None) -> dict:
    """Train cfg's fixed values on its fold; saves the best validation epoch to `out`."""
    from data import tokenize_texts
    from model.backbone import load_tokenizer

    if searched_dimensions(cfg):
        log.warning("search.space is ignored by train: using the fixed values of %s", cfg.source)
    preflight(cfg)
    resolve_precision(cfg.train.precision)  # fails now, not after loading data
    votes, split = load_split(cfg)
    tokens = tokenize_texts(votes.texts, load_tokenizer(cfg.model.backbone), cfg.data.max_length, cfg.data.lowercase)
    prepared = PreparedData(votes, split, {(cfg.model.backbone, cfg.data.lowercase): tokens})
    out_dir = Path(out or Path("pairtune_train") / cfg.search.name).resolve()
    config = cfg.to_dict()
    config["search"]["space"], config["search"]["points_to_evaluate"] = {}, []
    set_threads(None)

    def on_result(r, module) -> None:
        log.info("epoch %.2f: %s %.4f, val loss %.4f", r.epoch, AGREEMENT, r.agreement, r.val_loss)
        if r.is_best:
            save_checkpoint(out_dir, module, config, {AGREEMENT: r.agreement, "epoch": r.epoch, "step": r.step})

    _, tracker = fit(cfg.model, cfg.train, prepared.fold_data(cfg), cfg.data.max_length, on_result,
                     root_dir=str(out_dir), progress=True)
    best = max(tracker.history, key=lambda r: r.agreement)
    return {"metric": AGREEMENT, "best_agreement": best.agreement, "best_epoch": best.epoch,
            "checkpoint": str(out_dir), "history": tracker.history, "data": prepared.summary()}
