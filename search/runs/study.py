"""A search's Optuna study, kept with its run as a journal file (STUDY_FILE): what TPE learnt, each
validation as an intermediate value, and each trial's Tune trial id, outcome, epochs and kept
checkpoint as user attributes (search/tune/searcher.py writes them). optuna-dashboard reads it
(`pairtune dashboard`); `pairtune resume` reopens it.

Where the file is written: in the run itself for a local run; for a run on s3:// / gs://, on the
driver's disk (storage.driver_dir) and copied into the run whenever the searcher saves its state (as
often as Ray saves the experiment's) and when the search ends (storage.sync_driver_files).

Imports optuna, never Ray, torch or Lightning.
"""

from __future__ import annotations

from pathlib import Path

from search.runs import storage
from search.runs.layout import require_run

STUDY_FILE = "optuna_study.journal"
STUDY_STEPS_PER_EPOCH = 1000  # an intermediate value's step: thousandths of an epoch (ASHA's time unit)
TUNE_TRIAL_ID = "tune_trial_id"  # the user attributes of each trial in the study
OUTCOME = "outcome"  # finished (its last validation came: trained out or early-stopped), stopped, error, lost
EPOCHS = "epochs"  # epochs it trained, fractional
CHECKPOINT = "checkpoint"  # its kept checkpoint, relative to the run: TRIAL_ID/checkpoint_NNNNNN


def study_file(run) -> Path:
    """The journal the driver writes: in the run when it is local, else on this machine."""
    return storage.driver_dir(run) / STUDY_FILE


def journal_storage(path: str | Path):
    """An Optuna storage over a journal file (created when missing)."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(path)))


def publish(run) -> None:
    """Copy the driver's journal into a run on shared storage (nothing to do for a local run)."""
    local = study_file(run)
    if storage.is_uri(run) and local.exists():
        storage.write_bytes(storage.join(run, STUDY_FILE), local.read_bytes())


def fetch(run, into: Path | None = None) -> Path:
    """A local journal file of the run's study: the run's own file when it is local; for a run on shared
    storage, its copy there, downloaded to `into` (default: where the driver writes it,
    replacing what is there). ConfigError when `run` is not a run (layout.require_run);
    FileNotFoundError, naming the run, when it has no study."""
    if not storage.is_uri(run):
        path = Path(run) / STUDY_FILE
        require_run(run)
        if not path.is_file():
            raise FileNotFoundError(f"{run}: no {STUDY_FILE}: the search that wrote this run kept no Optuna study")
        return path
    remote = storage.join(run, STUDY_FILE)
    if not storage.exists(remote):
        raise FileNotFoundError(f"{run}: no {STUDY_FILE} yet (it is copied there when the searcher first saves)")
    path = into or study_file(run)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(storage.read_bytes(remote))
    return path


def completed_trials(run) -> list:
    """The COMPLETE trials (optuna FrozenTrials) of a run's study, read from a copy for a run on shared
    storage. ConfigError when `run` is not a run; FileNotFoundError, naming the run, when it has no study."""
    import tempfile

    import optuna

    with tempfile.TemporaryDirectory(prefix="pairtune-study-") as tmp:
        path = fetch(run, Path(tmp) / STUDY_FILE)  # a local run's own file; a copy of a remote one
        journal = journal_storage(path)
        names = [s.study_name for s in optuna.get_all_study_summaries(journal)]
        if not names:
            raise FileNotFoundError(f"{run}: its {STUDY_FILE} holds no study")
        loaded = optuna.load_study(study_name=names[0], storage=journal)
        return loaded.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
