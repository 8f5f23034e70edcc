"""The TF-IDF + ridge floor (model/baseline.py) for a search: fitted on the config's own fold before Ray
starts and written into the run (BASELINE_FILE), or fitted alone by `pairtune baseline CONFIG`."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from model.baseline import DESCRIPTION, NAME, tfidf_ridge
from search.runs import storage
from search.runs.layout import BASELINE_FILE

if TYPE_CHECKING:
    from data import FoldSplit, PairVotes

log = logging.getLogger(__name__)


def baseline_for_config(cfg) -> dict:
    """The baseline on cfg's data and fold (data.max_votes and max_train_votes apply)."""
    from search.tune.prepare import load_split

    votes, split = load_split(cfg)
    return tfidf_ridge(votes, split)


def write_baseline(run: Path | str, votes: PairVotes, split: FoldSplit) -> dict:
    """Fit the baseline for a search and keep it in the run directory. It never stops the search:
    a failure (e.g. too few texts for a vocabulary) is logged and recorded instead."""
    try:
        result = tfidf_ridge(votes, split)
        log.info("baseline %s: %s %.4f on fold %d (%.1fs)", NAME, "val/agreement", result["agreement"], split.fold, result["seconds"])
    except ValueError as e:
        log.warning("baseline %s could not be fitted: %s", NAME, e)
        result = {"baseline": NAME, "description": DESCRIPTION, "error": str(e)}
    storage.write_text(storage.join(run, BASELINE_FILE), json.dumps(result, indent=2))
    return result
