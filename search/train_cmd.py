"""`pairtune train`: one configuration, no search, best epoch saved."""

from __future__ import annotations

import logging
from pathlib import Path

from model.checkpoint import save_checkpoint
from model.precision import resolve_precision
from model.ranker import AGREEMENT
from model.train import fit
from search.config import PairtuneConfig, with_params
from search.prepare import prepare_data
from search.space import searched_dimensions
from search.tuner import preflight

log = logging.getLogger(__name__)


def train_config(cfg: PairtuneConfig, out: str | None = None) -> dict:
    """Train cfg's fixed values on its fold; saves the best validation epoch to `out`."""
    if searched_dimensions(cfg):
        log.warning("search.space is ignored by train: using the fixed values of %s", cfg.source)
    cfg = with_params(cfg, {})  # the fixed values alone: no search space, no first points
    preflight(cfg)
    resolve_precision(cfg.train.precision)  # fails now, not after loading data
    prepared = prepare_data(cfg)
    out_dir = Path(out or Path("pairtune_train") / cfg.search.name).resolve()
    config = cfg.to_dict()

    def on_result(r, module) -> None:
        log.info("epoch %.2f: %s %.4f, val loss %.4f", r.epoch, AGREEMENT, r.agreement, r.val_loss)
        if r.is_best:
            save_checkpoint(out_dir, module, config, {AGREEMENT: r.agreement, "epoch": r.epoch, "step": r.step})

    _, tracker = fit(cfg.model, cfg.train, prepared.fold_data(cfg), cfg.data.max_length, on_result,
                     root_dir=str(out_dir), progress=True)
    best = max(tracker.history, key=lambda r: r.agreement)
    return {"metric": AGREEMENT, "best_agreement": best.agreement, "best_epoch": best.epoch,
            "checkpoint": str(out_dir), "history": tracker.history, "data": prepared.summary()}
