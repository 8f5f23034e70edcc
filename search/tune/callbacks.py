"""Ray Tune callbacks of pairtune's searches besides the trackers' (search/tune/tracking.py)."""

from __future__ import annotations

import logging

from search.runs import storage
from search.runs.layout import CHECKPOINT_SCORE, RESUME_FILE

log = logging.getLogger(__name__)


def prune_callback():
    from ray import tune

    class PruneCheckpoints(tune.Callback):
        """When a trial ends (finished or stopped), drop everything but its best checkpoint. Errored
        trials keep their latest one, so `pairtune resume` can continue them."""

        def on_trial_complete(self, iteration, trials, trial, **info):
            if trial.path:  # the trial's directory in storage_path, inside its (local or shared) filesystem
                storage.prune_checkpoints(trial.storage.storage_filesystem, trial.path, CHECKPOINT_SCORE, RESUME_FILE)

    return PruneCheckpoints()


def _holds(checkpoint, name: str = "") -> bool:
    """Whether the checkpoint's directory (or the file `name` in it) is still in storage."""
    import pyarrow.fs as pafs

    path = checkpoint.path.rstrip("/") + ("/" + name if name else "")
    return checkpoint.filesystem.get_file_info(path).type != pafs.FileType.NotFound


def recover_callback():
    """For `pairtune resume` (search/tune/tuner.py's resume_search)."""
    from ray import tune

    class ContinueFromAKeptCheckpoint(tune.Callback):
        """A resumed trial continues from the latest checkpoint the run's saved experiment state names.
        Ray deletes a trial's previous checkpoint when it registers a new one (CheckpointConfig's
        num_to_keep) and saves the state a moment later: a driver killed in between (SIGKILL, the OOM
        killer, a lost head node) leaves the state naming a deleted directory, and Ray would fail the
        trial on every retry, losing it. Then the trial continues from the newest checkpoint Ray still
        keeps for it that holds resume state (its best), else from its start; its results repeat the
        validations after that point, as after any older checkpoint. Runs just before Ray restores the
        trial (TuneController._actor_started); reads Ray's checkpoint manager, pinned with Ray 2.60."""

        def on_trial_start(self, iteration, trials, trial, **info):
            manager = trial.run_metadata.checkpoint_manager
            latest = manager.latest_checkpoint_result
            if latest is None or _holds(latest.checkpoint):
                return
            kept = [r for r in manager.best_checkpoint_results if r is not latest and _holds(r.checkpoint, RESUME_FILE)]
            replacement = max(kept, key=lambda r: r.metrics.get("training_iteration", 0), default=None)
            manager._latest_checkpoint_result = replacement
            log.warning("trial %s: its latest checkpoint %s is gone (the search was killed while Ray replaced it); "
                        "it continues from %s", trial.trial_id, latest.checkpoint.path,
                        replacement.checkpoint.path if replacement else "its start")

    return ContinueFromAKeptCheckpoint()
