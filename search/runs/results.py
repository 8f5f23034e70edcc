"""The one reader of a run's trial records, for `export`, `status`, `report` (and so `search` and
`resume`, which end by exporting).

Ray Tune writes each trial's results to TRIAL/result.json, one JSON object per line, and keeps the
trial's last result in its experiment state. Ray's own reader (ExperimentAnalysis) turns a damaged
file into "no results", which silently ranks the trial last; here a damaged record is named:

- the complete lines are kept (a cut file keeps every result before the cut);
- a line that is not a JSON object, an unreadable file, or a file missing while the experiment state
  says the trial reported, or ending before the result the experiment state holds, is a problem that
  names the file.

`export` and `report` refuse a run with problems (its winner cannot be decided honestly); `status`
shows what it could read and the problems.

The trials themselves (id, sampled config, status, last result, directory, error file) are read from
the newest experiment_state-*.json as plain JSON, without Ray: Ray's own reader unpickles each trial,
which imports Ray and, through the pickled trial-name function, torch and Lightning. Only `export`
asks Ray, for the best checkpoint (search/runs/export.py).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from search.config.parse import ConfigError
from search.runs import storage

log = logging.getLogger(__name__)

RESULT_FILE = "result.json"  # ray.air.constants.EXPR_RESULT_FILE
ITERATION = "training_iteration"  # Tune counts every report of a trial
EXPERIMENT_STATE = "experiment_state-"  # Ray Tune's experiment_state-<timestamp>.json; the newest wins


class DamagedRun(ConfigError):
    """Trial records that cannot be read in full; each line names a file."""


def read_jsonl(path, shown=None) -> tuple[list[dict], str | None]:
    """(the JSON objects of every complete line, a problem naming the file or None). `shown` is how
    the file is named in the problem (its place in shared storage when `path` is a local copy)."""
    shown = shown or path
    try:
        raw = Path(path).read_bytes() if not storage.is_uri(path) else storage.read_text(path).encode("utf-8")
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        return [], f"{shown}: damaged or unreadable ({e})"
    lines = text.split("\n")
    rows, bad = [], []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if isinstance(row, dict):
            rows.append(row)
        else:
            bad.append(number)
    if not bad:
        return rows, None
    total = sum(1 for line in lines if line.strip())
    where = f"line {bad[0]}" + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else "")
    return rows, (f"{shown}: damaged: {where} of {total} is not a complete JSON record (the file was cut or "
                  f"overwritten); {len(rows)} complete record(s) read")


@dataclass
class TrialRecord:
    frame: pd.DataFrame  # one row per result, columns as Ray names them ("val/agreement", "epoch", ...)
    problem: str | None = None


def trial_record(trial, run: Path, shown=None) -> TrialRecord:
    """A trial's results from RUN/TRIAL_DIR/result.json, checked against its last result in the
    experiment state. `run` is a local directory; `shown` its real location (a URI) if a copy."""
    directory = trial.dirname  # trial directories sit directly in the run
    path = run / directory / RESULT_FILE
    name = storage.join(shown, directory, RESULT_FILE) if shown else path
    expected = (trial.last_result or {}).get(ITERATION)
    if not path.exists():
        missing = f"{name}: damaged: missing, but the experiment state has {expected} result(s) of this trial"
        return TrialRecord(pd.DataFrame(), missing if expected else None)
    rows, problem = read_jsonl(path, name)
    frame = pd.json_normalize(rows, sep="/") if rows else pd.DataFrame()  # as ExperimentAnalysis reads it
    if problem is None and expected and (not len(frame) or ITERATION not in frame or frame[ITERATION].max() < expected):
        got = int(frame[ITERATION].max()) if len(frame) and ITERATION in frame else 0
        problem = (f"{name}: damaged: ends at result {got} but the experiment state has {expected} results of this "
                   "trial (the file was cut)")
    return TrialRecord(frame, problem)


@dataclass
class TrialState:
    """What a run says of one trial, as Ray's experiment state records it."""

    trial_id: str
    config: dict  # the sampled `section.key` values
    status: str  # PENDING, RUNNING, PAUSED, TERMINATED or ERROR
    last_result: dict | None
    dirname: str  # the trial's directory, directly in the run
    error_file: str | None = None  # Ray's record of the trial's last error, when it failed


def read_trials(run: Path) -> list[TrialState]:
    """Every trial of the newest experiment state of a local run directory."""
    newest = max(p.name for p in run.iterdir() if p.name.startswith(EXPERIMENT_STATE) and p.name.endswith(".json"))
    state = json.loads((run / newest).read_text(encoding="utf-8"))
    trials = []
    for trial_json, metadata_json in state["trial_data"]:
        trial, metadata = json.loads(trial_json), json.loads(metadata_json)
        # As Ray reads a saved state: a trial that was running is pending until a search resumes it.
        status = "PENDING" if trial["status"] == "RUNNING" else trial["status"]
        error = metadata.get("error_filename")
        dirname = trial["relative_logdir"]
        trials.append(TrialState(trial["trial_id"], trial["config"], status, metadata.get("last_result"), dirname,
                                 str(run / dirname / error) if error else None))
    return trials


@dataclass
class RunRecords:
    trials: list[TrialState]
    frames: dict[str, pd.DataFrame]  # trial id -> results
    problems: dict[str, str] = field(default_factory=dict)  # trial id -> what is wrong with its record
    intervals: dict = field(default_factory=dict)  # what the leaderboard's intervals were computed from


def read_run(run: Path, metric: str, mode: str, shown=None) -> RunRecords:
    """Every trial of a run (a local directory; `shown` is its real location when a copy)."""
    if not storage.has_experiment(run):
        raise ConfigError([f"{shown or run}: the search never started (no Ray Tune experiment state in it); "
                           "nothing to read"])
    trials = read_trials(run)
    frames, problems = {}, {}
    for trial in trials:
        record = trial_record(trial, run, shown)
        frames[trial.trial_id] = record.frame
        if record.problem:
            problems[trial.trial_id] = record.problem
            log.warning("%s", record.problem)
    return RunRecords(trials, frames, problems)


def refuse_damaged(records: RunRecords, run) -> None:
    """Raise DamagedRun naming every damaged record: ranking without them could name the wrong winner."""
    if records.problems:
        raise DamagedRun([*records.problems.values(),
                          f"{run}: trials not ranked: a damaged trial record could hide the best trial; restore the "
                          "file(s) named above (nothing was written)"])
