"""Reading annotator pair votes from CSV.

A vote says "text `more` ranks above text `less`". Jigsaw's `validation_data.csv` layout is
`worker,less_toxic,more_toxic`; any other CSV works through a column mapping. Texts are stored once
(`PairVotes.texts`) and votes refer to them by index, so everything downstream (folds,
tokenisation, scoring) works per unique text, not per vote.
"""

from __future__ import annotations

import csv
import difflib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

DEMO_PAIRS = Path(__file__).with_name("demo") / "demo_pairs.csv"
GROUP_COLUMN = "worker"  # Jigsaw's annotator id (Ruddit's and the demo's: the 4-text tuple), read when present


class DataError(ValueError):
    """Bad input data: the message names the file and, where it can, the row or column; one line
    per problem when there are several."""


MAX_ROWS_LISTED = 10  # bad rows named one by one; the rest are counted


def csv_row(index: int) -> int:
    """The row number a message names for the frame's row `index`: the CSV line number (+1 for the
    header, +1 as rows count from 1)."""
    return index + 2


def row_lines(path, rows: np.ndarray, what) -> list[str]:
    """One line per bad row (csv_row numbers), the first MAX_ROWS_LISTED of them, then a count of the
    rest. `what(i)` describes row i's problem."""
    lines = [f"{path}: row {csv_row(i)}: {what(i)}" for i in rows[:MAX_ROWS_LISTED].tolist()]
    if len(rows) > MAX_ROWS_LISTED:
        lines.append(f"{path}: ... and {len(rows) - MAX_ROWS_LISTED} more such rows")
    return lines


@dataclass(frozen=True)
class PairVotes:
    """Pair votes over a table of unique texts.

    texts: the unique texts, in order of first appearance.
    less, more: (V,) int64 indices into `texts`, one entry per vote (repeats and conflicts kept).
    Votes derived from scored texts (data/scores.py) also carry the scores and the text folds.
    """

    texts: list[str]
    less: np.ndarray
    more: np.ndarray
    source: str
    identical_dropped: int = 0
    scores: np.ndarray | None = None
    """(N,) each text's score, when the votes were derived from scored texts (data.format scores/labels)."""
    text_fold: np.ndarray | None = None
    """(N,) each text's fold, when folds were made before the pairs were derived."""
    groups: np.ndarray | None = None
    """(V,) each vote's annotation group (codes of the CSV's `worker` column, when it has one): votes
    one annotator, or one best-worst tuple, cast together; the unit model/intervals.py resamples."""

    @property
    def n_votes(self) -> int:
        return len(self.less)


def resolve_pairs_path(path: str) -> Path:
    """`demo` names the generated demo data shipped with the package; anything else is a path."""
    return DEMO_PAIRS if path == "demo" else Path(path).expanduser()


def _read_frame(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a CSV file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty")
    try:
        # utf-8-sig strips a byte-order mark; keep_default_na keeps texts like "NA" or "null" as text.
        return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not valid UTF-8 (byte {e.start}: {e.reason})") from None
    except (pd.errors.ParserError, csv.Error) as e:
        with open(path, encoding="utf-8-sig", errors="replace") as f:
            header = f.readline().rstrip("\r\n")
        hint = _delimiter_hint([header] if "," not in header else header.split(","))
        raise DataError(f"{path}: not a readable CSV ({str(e).strip()}){hint}") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: no header row") from None


def _delimiter_hint(header: list[str]) -> str:
    """A header read as one column that holds a semicolon, tab or bar: most likely another delimiter."""
    if len(header) == 1 and any(sep in header[0] for sep in ";\t|"):
        return " (the header has a single column: is the delimiter not a comma?)"
    return ""


def _check_columns(frame: pd.DataFrame, path: Path, wanted: dict[str, str]) -> None:
    have = [str(c) for c in frame.columns]
    for role, column in wanted.items():
        if column in have:
            continue
        others = [c for c in have if c not in wanted.values()]  # columns no other role already uses
        hint = difflib.get_close_matches(column, others, n=1, cutoff=0.5)
        extra = f"; did you mean '{hint[0]}'?" if hint else ""
        extra += _delimiter_hint(have)
        raise DataError(
            f"{path}: missing column '{column}' (data.{role}_column); columns are {have}{extra}"
        )


def read_pairs(path: str | Path, less_column: str = "less_toxic", more_column: str = "more_toxic") -> PairVotes:
    """Read a CSV of pair votes. Raises DataError naming the file, row and column of any problem.

    Rows whose two texts are identical carry no ranking signal: they are dropped and counted.
    """
    path = resolve_pairs_path(str(path))
    frame = _read_frame(path)
    _check_columns(frame, path, {"less": less_column, "more": more_column})
    if len(frame) == 0:
        raise DataError(f"{path}: header only, no votes")
    less_txt = frame[less_column].to_numpy(dtype=object)
    more_txt = frame[more_column].to_numpy(dtype=object)
    problems = []
    for column, values in ((less_column, less_txt), (more_column, more_txt)):
        empty = np.flatnonzero([not str(v).strip() for v in values])
        problems += row_lines(path, empty, lambda i, c=column: f"empty text in column '{c}'")
    if problems:
        raise DataError("\n".join(problems))
    same = less_txt == more_txt
    if same.all():
        raise DataError(f"{path}: every row has the same text on both sides; no votes left")
    if same.any():
        log.warning("%s: dropped %d rows whose two texts are identical", path, int(same.sum()))
    less_txt, more_txt = less_txt[~same], more_txt[~same]
    codes, uniques = pd.factorize(np.concatenate([less_txt, more_txt]))
    n = len(less_txt)
    groups = None
    if GROUP_COLUMN in frame.columns:
        groups = pd.factorize(frame[GROUP_COLUMN].to_numpy(dtype=object)[~same])[0].astype(np.int64)
    return PairVotes(
        texts=[str(t) for t in uniques],
        less=codes[:n].astype(np.int64),
        more=codes[n:].astype(np.int64),
        source=str(path),
        identical_dropped=int(same.sum()),
        groups=groups,
    )


def subsample_votes(votes: PairVotes, max_votes: int | None, seed: int) -> PairVotes:
    """A seeded random subset of the votes (fast iteration); texts not voted on are removed."""
    if max_votes is None or max_votes >= votes.n_votes:
        return votes
    keep = np.sort(np.random.default_rng(seed).choice(votes.n_votes, size=max_votes, replace=False))
    used, inverse = np.unique(np.concatenate([votes.less[keep], votes.more[keep]]), return_inverse=True)
    return PairVotes(
        texts=[votes.texts[i] for i in used],
        less=inverse[:max_votes].astype(np.int64),
        more=inverse[max_votes:].astype(np.int64),
        source=votes.source,
        identical_dropped=votes.identical_dropped,
        groups=None if votes.groups is None else votes.groups[keep],
    )
