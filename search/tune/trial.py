"""One Ray Tune trial: sampled parameters -> typed config -> model.train.fit, reporting each validation."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time

from ray import tune

import search
from data.prepare import PreparedData
from model.checkpoint import save_checkpoint
from model.metrics import AGREEMENT, METRIC_MODES, VAL_LOSS
from model.train import ValidationResult, fit, save_resume_state, set_threads
from search.config.parse import PairtuneConfig, with_params
from search.runs.layout import (
    CHECKPOINT_SCORE,
    CPU_SECONDS,
    EPOCH,
    GPU_SECONDS,
    NOT_BEST_SCORE,
    RESUME_FILE,
    TIME_PREFIX,
    WALL,
    write_val_scores,
)
from search.tune.placement import placement

log = logging.getLogger(__name__)


def trial_metrics(r: ValidationResult, cpus: float, gpus: float) -> dict:
    # Ray ranks checkpoints by this, higher first, whatever the search's mode; a validation that is
    # not a new best scores below any real value (a negated loss can be far below -1).
    score = (r.value if METRIC_MODES[r.monitor] == "max" else -r.value) if r.is_best else NOT_BEST_SCORE
    return {
        **r.metrics,  # val/pearson, val/spearman when the data is scored
        AGREEMENT: r.agreement,
        VAL_LOSS: r.val_loss,
        EPOCH: r.epoch,
        "step": r.step,
        "best_agreement": r.best_agreement,
        "final": r.final,
        "startup_s": r.startup_s,
        # Ray keeps the checkpoint with the highest score (and the latest): only a new best epoch
        # scores, so the kept best always holds the model, never a resume-only checkpoint.
        CHECKPOINT_SCORE: score,
        **spent_metrics(r.spent, cpus, gpus),
    }


def spent_metrics(spent: dict, cpus: float, gpus: float) -> dict:
    """What the trial has used so far: its wall time in parts (model.train.SPENT: start-up with the
    process's imports, training, validation, reporting; summed over its tries) and its resources times
    that wall time (search.cpus_per_trial, search.gpus_per_trial: what Ray reserved for it, used or not)."""
    wall = sum(spent.values())
    return {**{f"{TIME_PREFIX}{k}": v for k, v in spent.items()}, WALL: round(wall, 3),
            CPU_SECONDS: round(cpus * wall, 3), GPU_SECONDS: round(gpus * wall, 3)}


def fill_checkpoint(d: str, r: ValidationResult, module, config_dict: dict, metrics: dict, rank0: bool = True) -> bool:
    """Write into d what this validation leaves: the model and its score of each validation text
    (VAL_SCORES, for the intervals) when it is a new best, and the state to resume from unless
    training is over. In a data-parallel trial every process calls this (saving
    the resume state is collective) and only rank 0 writes. True when d holds anything."""
    if r.is_best and rank0:
        save_checkpoint(d, module, config_dict, metrics)
        if r.scores is not None:
            write_val_scores(d, r.scores)
    if not r.final:  # nothing follows the last validation, so nothing to resume
        save_resume_state(module, os.path.join(d, RESUME_FILE))
    return bool(os.listdir(d))


def report_validation(report, checkpoint_type, r: ValidationResult, module, config_dict: dict, metrics: dict,
                      rank0: bool = True) -> None:
    """Hand one validation to Ray: its metrics, with a checkpoint when it leaves one (fill_checkpoint).
    In a trial, `report` and `checkpoint_type` are tune.report and tune.Checkpoint; in each process of a
    data-parallel trial, ray.train's, where every process must report (it is a barrier) and rank 0
    alone attaches the checkpoint."""
    with tempfile.TemporaryDirectory() as d:
        written = fill_checkpoint(d, r, module, config_dict, metrics, rank0)
        report(metrics, checkpoint=checkpoint_type.from_directory(d) if written and rank0 else None)


@contextlib.contextmanager
def resume_state(checkpoint):
    """The RESUME_FILE in the checkpoint Ray hands a retried or resumed trial; None when there is none
    (a first start, or a best-only checkpoint of a trial whose training was over)."""
    with checkpoint.as_directory() if checkpoint else contextlib.nullcontext() as restored:
        path = os.path.join(restored, RESUME_FILE) if restored else None
        yield path if path and os.path.exists(path) else None


def validation_line(name: str, r: ValidationResult, where: dict) -> str:
    """One line per validation in the job's logs (and the trial actor's logs on the dashboard)."""
    return (f"pairtune: trial {name}: epoch {r.epoch:.2f} {AGREEMENT} {r.agreement:.4f} (best {r.best_agreement:.4f}) "
            f"on {where['device']} node {where['node_ip']}")


# Ray waits this long for an ended trial's training thread before it hands the process to the next trial
# (search.reuse_trial_processes; Ray's default, 2 s, can be too short for Lightning's teardown on a busy
# node, and then the next trial fails). Read by Ray in this process, when it resets the trainable.
os.environ.setdefault("TUNE_FUNCTION_THREAD_TIMEOUT_S", "60")


def working_directory() -> str:
    """Where a trial writes the files it keeps (TensorBoard events): its working directory, which Ray
    copies into the trial's directory in storage from whichever node ran it (the tuner's
    SyncConfig(sync_artifacts=True)). Not tune.get_context().get_trial_dir(): in Ray 2.60 that is a
    staging directory on the driver's node in a fresh process, never copied from another node, and the
    working directory in a reused one (FunctionTrainable.setup and reset_config disagree)."""
    from ray.train._internal.session import get_session

    return get_session().storage.trial_working_directory


_trials_in_process = 0  # trials this process has started: from the second on, imports are already paid


def release_previous_trial() -> None:
    """A reused process starts a trial with the last one's model, optimizer and batches unreachable but
    possibly still allocated (Lightning holds reference cycles): collect them, and hand the CUDA
    allocator's cached blocks back, so the GPU's memory is this trial's."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def run_trial(params: dict, cfg: PairtuneConfig, prepared: PreparedData) -> None:
    """Tune function trainable; `cfg` and `prepared` arrive through the object store."""
    global _trials_in_process
    started_at = time.perf_counter()
    imports_s = started_at - search.LOADED_AT if _trials_in_process == 0 else 0.0
    _trials_in_process += 1
    if _trials_in_process > 1:
        release_previous_trial()
    trial_cfg = with_params(cfg, params)
    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)  # Ray's trial table reports instead
    set_threads(cfg.search.cpus_per_trial)
    data = prepared.fold_inputs(trial_cfg.model.backbone, trial_cfg.data.lowercase)
    trial_dir = working_directory()
    use_gpu = cfg.search.gpus_per_trial > 0
    where = placement(use_gpu, trial_cfg.train.precision)
    name = tune.get_context().get_trial_name()
    # The trial's process: a trial that reuses one (process_trial 2+) paid no imports.
    process = {"pid": os.getpid(), "process_trial": _trials_in_process, "imports_s": round(imports_s, 3)}
    config_dict = trial_cfg.to_dict()

    def on_result(r: ValidationResult, module) -> None:
        """Every validation leaves a checkpoint to resume from; a new best one also holds the model.
        Ray keeps the best and the latest; PruneCheckpoints drops the rest when the trial ends."""
        metrics = {**trial_metrics(r, cfg.search.cpus_per_trial, cfg.search.gpus_per_trial), **where, **process}
        print(validation_line(name, r, where), flush=True)
        report_validation(tune.report, tune.Checkpoint, r, module, config_dict, metrics)

    from pytorch_lightning.loggers import TensorBoardLogger

    logger = TensorBoardLogger(save_dir=trial_dir, name="lightning", version="")
    checkpoint = tune.get_checkpoint()  # set when Ray retries or resumes this trial
    with resume_state(checkpoint) as resume:
        if resume:
            log.info("trial resumes from %s", checkpoint.path)
        fit(
            trial_cfg.model, trial_cfg.train, data, trial_cfg.data.max_length, on_result,
            root_dir=trial_dir, logger=logger, use_gpu=use_gpu, started_at=started_at,
            resume_from=resume, monitor=cfg.search.metric, imports_s=imports_s,
        )
