"""`pairtune predict`: score a CSV of texts with one model or a fold ensemble.

One model writes its raw scores. A fold ensemble (a directory of fold_K/ model directories and the
ensemble.json that lists them, as `pairtune train --folds all` leaves) writes the rank average: each
model's scores become ranks over the rows (ties share their average rank), the ranks are averaged over
models and scaled to [0, 1]. Rank averaging is what the Jigsaw solutions did, since folds' raw score
scales differ. A member that is missing, or a fold_* directory that is not a member, is an error.

Nothing is scored until everything that can fail cheaply has been checked: the output path (never
inside a model, ensemble or run directory), the texts, and every model, loaded once.

Each unique text is tokenised and scored once per model, longest first in batches padded only to
their own longest text, under torch.inference_mode; the output has one row per input row, in the
input's order, duplicate ids and texts included.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from data import DataError, tokenize_texts
from data.pairs import _read_frame, csv_row
from model.checkpoint import ENSEMBLE, FOLD_DIR, is_model_dir, load_checkpoint, load_tokenizer_for, missing_files
from model.precision import cuda_usable
from model.scoring import score_tokens
from search.config.parse import ConfigError
from search.runs.layout import EXPORT_DIR, SUMMARY, best_scored_checkpoint, is_run_dir
from search.runs.storage import probe_writable

log = logging.getLogger(__name__)

SCORE_COLUMN = "score"


def find_models(path: str | Path) -> list[Path]:
    """[path] for a model directory; for a fold ensemble, the fold_K/ directories its ensemble.json
    lists (by K), each checked to be a model directory, with no other fold_* directory beside them."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ConfigError([f"{path}: model directory not found"])
    if is_model_dir(path):
        return [path]
    if not (path / ENSEMBLE).is_file():
        raise ConfigError([_not_a_model_dir(path)])
    members = ensemble_members(path / ENSEMBLE)
    problems = [f"{path / name}: {problem}; {path / ENSEMBLE} lists it as a member"
                for name in members for problem in _member_problems(path / name)]
    listed = ", ".join(members)
    problems += [f"{p}: not a member of the ensemble ({path / ENSEMBLE} lists {listed}); move it out of {path}"
                 for p in sorted(path.glob("fold_*")) if p.is_dir() and p.name not in members]
    if problems:
        raise ConfigError(problems)
    return [path / name for name in members]


def _not_a_model_dir(path: Path) -> str:
    if is_run_dir(path):  # a search's run: its trials' checkpoints are models
        try:
            best = json.loads((path / EXPORT_DIR / SUMMARY).read_text(encoding="utf-8")).get("best_checkpoint")
        except (OSError, ValueError, AttributeError):
            best = None
        if best and not Path(best).exists():  # the run was moved or copied since its export: where it is now
            moved = path / Path(best).parent.name / Path(best).name
            best = moved if moved.is_dir() else None
        which = f"its best trial's checkpoint, {best}" if best else f"a trial's checkpoint_* directory (`pairtune export {path}` names the best)"
        return (f"{path}: a search run directory, not a model; predict with {which}, or with an ensemble of its "
                f"best trials (`pairtune ensemble {path} -o DIR`)")
    checkpoints = sorted(p for p in path.glob("checkpoint_*") if p.is_dir())
    if (path / "params.json").is_file() and checkpoints:  # one trial of a search
        best = best_scored_checkpoint(path) or checkpoints[-1]  # its best validation's, else its newest
        return f"{path}: a trial of a search, not a model; predict with its checkpoint, {best}"
    hint = "train one with `pairtune train CONFIG [--folds all]`"
    folds = sorted(p.name for p in path.glob("fold_*") if p.is_dir())
    if folds:  # e.g. `train --folds` stopped before its last fold, or fold directories copied by hand
        return (f"{path}: not a model directory nor a fold ensemble: it holds {', '.join(folds)} but no {ENSEMBLE}, "
                f"which `pairtune train --folds` writes after its last fold; predict with one fold_K directory, or {hint}")
    return f"{path}: not a model directory (no model.pt and config.yaml) nor a fold ensemble (no {ENSEMBLE}); {hint}"


def ensemble_members(manifest: Path) -> list[str]:
    """The fold_K directory names an ensemble.json lists, by K."""
    try:
        summary = json.loads(manifest.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        summary = None
    folds = summary.get("folds") if isinstance(summary, dict) else None
    if not isinstance(folds, dict) or not folds or not all(str(k).isdigit() for k in folds):
        raise ConfigError([f"{manifest} is damaged or not a pairtune ensemble (expected a \"folds\" mapping of fold "
                           "numbers, as `pairtune train --folds` writes)"])
    return [FOLD_DIR.format(k) for k in sorted(int(k) for k in folds)]


def _member_problems(directory: Path) -> list[str]:
    if not directory.is_dir():
        return ["missing"]
    missing = missing_files(directory)
    return [f"not a model directory (no {' and no '.join(missing)})"] if missing else []


def check_output(out_csv: Path, texts_csv: Path) -> None:
    """Refuse, before any work, an output that would overwrite the input texts, land inside a model,
    ensemble or run directory, or cannot be written."""
    out = out_csv.resolve()
    if out == texts_csv.expanduser().resolve():
        raise ConfigError([f"{out_csv}: the output would overwrite the input texts; choose another -o"])
    for parent in out.parents:
        kind = _protected(parent)
        if kind:
            raise ConfigError([f"-o {out_csv}: inside {parent}, {kind}; choose an output outside it"])
    if out.is_dir():
        raise ConfigError([f"-o {out_csv}: is a directory; give a file name, e.g. {out_csv / 'scores.csv'}"])
    why = probe_writable(out.parent, keep=False)  # the directory the output will be made in
    if why:
        raise ConfigError([f"-o {out_csv}: cannot write there ({why})"])
    if out.exists() and not os.access(out, os.W_OK):
        raise ConfigError([f"-o {out_csv}: not writable (no write permission on {out})"])


def _protected(directory: Path) -> str | None:
    """What `directory` is, if predict must never write into it."""
    if is_model_dir(directory):
        return "a model directory"
    if (directory / ENSEMBLE).is_file():
        return "a fold ensemble directory"
    if is_run_dir(directory):
        return "a search run directory"
    return None


def read_texts(path: str | Path, id_column: str = "comment_id", text_column: str = "text") -> pd.DataFrame:
    """The CSV's id and text columns; DataError naming the file and column for anything unusable."""
    path = Path(path).expanduser()
    frame = _read_frame(path)
    have = [str(c) for c in frame.columns]
    for option, column in (("--id-column", id_column), ("--text-column", text_column)):
        if column not in have:
            raise DataError(f"{path}: missing column '{column}' ({option}); columns are {have}")
    if len(frame) == 0:
        raise DataError(f"{path}: header only, no texts to score")
    empty = int((frame[text_column].str.strip() == "").sum())
    if empty:
        log.warning("%s: rows with an empty text: %d; they are scored as empty texts", path, empty)
    ids = frame[id_column]
    repeated = ids[ids.duplicated(keep=False)]
    if len(repeated):  # scorable, but worth saying before the scores go where ids must be unique (a submission)
        rows = repeated.groupby(repeated, sort=False).groups  # id -> its row indices, in file order
        shown = [f"{i!r} on rows {', '.join(str(csv_row(r)) for r in list(at)[:5])}{', ...' if len(at) > 5 else ''}"
                 for i, at in list(rows.items())[:5]]
        log.warning("%s: ids on more than one row: %d (%d rows): %s%s; each row keeps its own score, so the output "
                    "repeats them too", path, len(rows), len(repeated), "; ".join(shown), "; ..." if len(rows) > 5 else "")
    return frame[[id_column, text_column]]


def score_texts(module, config: dict, tokenizer, texts: list[str], batch_size: int = 128,
                device: torch.device | None = None, progress: bool = True, desc: str = "scoring") -> np.ndarray:
    """One score per text, in order. Texts are handled as in training (data.max_length, data.lowercase)."""
    from tqdm.auto import tqdm

    device = device or torch.device("cuda" if cuda_usable() else "cpu")
    max_length, lowercase = int(config["data"]["max_length"]), bool(config["data"]["lowercase"])
    tokens = tokenize_texts(texts, tokenizer, max_length, lowercase)
    with tqdm(total=len(texts), desc=desc, unit="text", disable=not progress) as bar:
        return score_tokens(module, tokens, max_length, config["train"].get("precision", "auto"), device, batch_size,
                            on_batch=bar.update)


def rank_average(score_lists: list[np.ndarray]) -> np.ndarray:
    """Mean over models of each row's rank (ties averaged), scaled so the lowest possible is 0 and
    the highest 1."""
    n = len(score_lists[0])
    if n == 1:
        return np.full(1, 0.5)
    ranks = np.mean([pd.Series(s).rank(method="average").to_numpy() for s in score_lists], axis=0)
    return (ranks - 1.0) / (n - 1.0)


def _load(directory: Path):
    """(module, config, tokenizer) of a model directory; CheckpointError naming a damaged file."""
    module, config = load_checkpoint(directory)
    return module, config, load_tokenizer_for(directory, config)


def predict(model_dir: str | Path, texts_csv: str | Path, out_csv: str | Path, id_column: str = "comment_id",
            text_column: str = "text", batch_size: int = 128, progress: bool = True) -> dict:
    """Score texts_csv with the model (or fold ensemble) in model_dir; write id_column,score to out_csv."""
    start = time.perf_counter()
    models = find_models(model_dir)
    out_csv = Path(out_csv).expanduser()
    check_output(out_csv, Path(texts_csv))
    if batch_size <= 0:
        raise ConfigError([f"--batch-size: must be positive, got {batch_size}"])
    frame = read_texts(texts_csv, id_column, text_column)
    codes, unique = pd.factorize(frame[text_column].to_numpy(dtype=object))
    unique = [str(t) for t in unique]
    loaded = _load(models[0])
    for directory in models[1:]:  # a damaged fold K fails now, not after folds 0..K-1 are scored
        _load(directory)  # and is loaded again in its turn: one model in memory at a time
    per_model = []
    for i, directory in enumerate(models):
        module, config, tokenizer = loaded if i == 0 else _load(directory)
        loaded = None
        desc = f"model {i + 1}/{len(models)}" if len(models) > 1 else "scoring"
        per_model.append(score_texts(module, config, tokenizer, unique, batch_size, progress=progress, desc=desc)[codes])
        del module
    scores = per_model[0] if len(models) == 1 else rank_average(per_model)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({id_column: frame[id_column].to_numpy(), SCORE_COLUMN: scores}).to_csv(out_csv, index=False)
    return {"rows": len(frame), "unique_texts": len(unique), "models": [str(m) for m in models],
            "combined": "raw score" if len(models) == 1 else "rank average in [0, 1]", "out": str(out_csv),
            "seconds": round(time.perf_counter() - start, 2)}
