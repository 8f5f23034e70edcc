"""The layout of a run directory (storage_path/name), in one place, for the code that writes a run
(tuner, trial, ddp, budget, baseline) and the code that reads it (status, export, report, predict).

    RUN/
      pairtune_config.yaml        CONFIG_FILE: the validated base config; claims the directory
      pairtune_data.json          DATA_FILE: what the data preparation found
      pairtune_baseline.json      BASELINE_FILE: the TF-IDF + ridge floor (search.baseline)
      pairtune_stops.jsonl        STOPS_FILE: one line per trial ASHA stopped early
      pairtune_end.json           END_FILE: which budget ended the search (search/tune/budget.py)
      pairtune_validation.npz     VALIDATION_FILE: the fold's validation votes, for the intervals
      experiment_state-*.json     Ray Tune's experiment state
      TRIAL_ID/result.json        one line per reported result; EPOCH is ASHA's time attribute
      TRIAL_ID/checkpoint_*/      the best validation (model.pt ..., VAL_SCORES: its score of each
                                  validation text), ranked by CHECKPOINT_SCORE, and RESUME_FILE while
                                  the trial may continue
      optuna_study.journal        study.STUDY_FILE: the Optuna study (search/runs/study.py)
      export/                     EXPORT_DIR: BEST_YAML, LEADERBOARD, SUMMARY (`pairtune export`)

Imports no Ray, torch or Lightning: reading a finished run must not pay for them.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import yaml

from search.config.load import read_yaml
from search.config.parse import ConfigError, PairtuneConfig, parse_config
from search.runs import storage

CONFIG_FILE = "pairtune_config.yaml"  # the validated base config, written into the run directory
DATA_FILE = "pairtune_data.json"  # what the data preparation found
BASELINE_FILE = "pairtune_baseline.json"
STOPS_FILE = "pairtune_stops.jsonl"  # one line per trial the scheduler stopped early
END_FILE = "pairtune_end.json"
EXPORT_DIR = "export"
BEST_YAML = "best.yaml"
LEADERBOARD = "leaderboard.csv"
SUMMARY = "summary.json"

EPOCH = "epoch"  # ASHA's time attribute: fractional epochs, consistent at any reporting frequency
CHECKPOINT_SCORE = "checkpoint_score"  # what Ray ranks a trial's checkpoints by, higher first
TIME_PREFIX = "time/"  # a trial's wall time in parts, summed over its tries: time/startup_s, time/train_s, time/val_s, time/report_s
WALL = "time/wall_s"  # their sum: the trial's wall time (ASHA's time attribute with search.time_attr: seconds)
CPU_SECONDS, GPU_SECONDS = "cost/cpu_s", "cost/gpu_s"  # the trial's reserved CPUs and GPUs times its wall time
NOT_BEST_SCORE = -1e12  # the CHECKPOINT_SCORE of a validation that is not a new best (its checkpoint holds no model)
VALIDATION_FILE = "pairtune_validation.npz"  # the fold's validation votes (write_validation)
VAL_SCORES = storage.KEPT_FROM_CHECKPOINTS[0]  # "val_scores.npy": a best validation's score of each validation text
RESUME_FILE = "resume.ckpt"  # Lightning checkpoint inside a trial checkpoint, for retries and resume
SYNC_PERIOD_S = 30  # tune.SyncConfig(sync_period=...) of every search: how stale a remote status can be


def run_dir(cfg) -> Path | str:
    """storage_path/name of a PairtuneConfig: a resolved Path for local storage, a URI string for
    s3:// / gs:// / file://."""
    return storage.join(storage.location(cfg.search.storage_path), cfg.search.name)


def is_run_dir(path: Path) -> bool:
    """A local directory that holds a search run."""
    return (Path(path) / CONFIG_FILE).is_file()


def ended_by(run) -> dict:
    """Why a search ended, from its run directory or URI (see search/tune/budget.py)."""
    path = storage.join(storage.location(run), END_FILE)
    if storage.exists(path):
        return json.loads(storage.read_text(path))
    return {"ended_by": None}


def read_baseline(run: Path | str) -> dict | None:
    """The baseline a search fitted before it started (search/tune/baseline.py), or None."""
    path = storage.join(run, BASELINE_FILE)
    return json.loads(storage.read_text(path)) if storage.exists(path) else None


def require_run(run: Path | str) -> None:
    """ConfigError unless `run` (a directory or URI) holds a pairtune run (CONFIG_FILE): what every
    command that reads a run says when it does not."""
    if storage.exists(storage.join(run, CONFIG_FILE)):
        return
    if not storage.exists(run):
        raise ConfigError([f"{run}: no such run directory"])
    raise ConfigError([f"{run}: not a pairtune run directory (no {CONFIG_FILE})"])


def load_run_config(run: Path | str) -> PairtuneConfig:
    """The base config a run directory (or URI) keeps (CONFIG_FILE), validated again."""
    require_run(run)
    path = storage.join(run, CONFIG_FILE)
    if storage.is_uri(path):
        return parse_config(yaml.safe_load(storage.read_text(path)), str(path))
    return parse_config(read_yaml(path), str(path))


def not_a_config(path: Path) -> str | None:
    """What to say when a run or model directory is given where a config file is expected."""
    if (path / CONFIG_FILE).is_file():
        return f"{path}: is a search run directory, not a config file; did you mean {path / EXPORT_DIR / BEST_YAML}?"
    if (path / "model.pt").is_file() and (path / "config.yaml").is_file():
        return f"{path}: is a model directory, not a config file; the config that trained it is {path / 'config.yaml'}"
    return None


def write_validation(run, less: np.ndarray, more: np.ndarray, groups: np.ndarray | None) -> None:
    """The fold's validation votes, once per run: (V,) positions of each vote's two texts among the
    validation texts (the order of every trial's VAL_SCORES) and (V,) annotation groups, if any."""
    arrays = {"less": np.asarray(less, dtype=np.int32), "more": np.asarray(more, dtype=np.int32)}
    if groups is not None:
        arrays["groups"] = np.asarray(groups, dtype=np.int64)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    storage.write_bytes(storage.join(run, VALIDATION_FILE), buffer.getvalue())


def read_validation(run) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
    """(less, more, groups) that write_validation kept; None for a run from before runs kept them."""
    path = storage.join(run, VALIDATION_FILE)
    if not storage.exists(path):
        return None
    with np.load(io.BytesIO(storage.read_bytes(path)), allow_pickle=False) as f:
        return f["less"], f["more"], f["groups"] if "groups" in f.files else None


def write_val_scores(checkpoint_dir, scores: np.ndarray) -> None:
    """A best validation's score of each validation text, float32 (4 bytes a text), into its checkpoint."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(scores, dtype=np.float32), allow_pickle=False)
    storage.write_bytes(storage.join(checkpoint_dir, VAL_SCORES), buffer.getvalue())


def best_scored_checkpoint(trial_dir):
    """The checkpoint of a trial's best validation so far: its newest checkpoint that kept scores (only
    a new best validation writes them, and Ray keeps the best checkpoint); None before the first."""
    for name in sorted((n for n in storage.list_names(trial_dir) if n.startswith("checkpoint_")), reverse=True):
        if storage.exists(storage.join(trial_dir, name, VAL_SCORES)):
            return storage.join(trial_dir, name)
    return None


def read_val_scores(checkpoint_dir) -> np.ndarray:
    """The scores write_val_scores kept in a checkpoint."""
    return np.load(io.BytesIO(storage.read_bytes(storage.join(checkpoint_dir, VAL_SCORES))), allow_pickle=False)


def best_scores(trial_dir) -> np.ndarray | None:
    """The scores of a trial's best validation so far (best_scored_checkpoint's); None before the first."""
    checkpoint = best_scored_checkpoint(trial_dir)
    return None if checkpoint is None else read_val_scores(checkpoint)
