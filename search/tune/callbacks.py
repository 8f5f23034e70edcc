"""Ray Tune callbacks of every search besides the trackers' (search/tune/tracking.py)."""

from __future__ import annotations

from search.runs import storage
from search.runs.layout import CHECKPOINT_SCORE, RESUME_FILE


def prune_callback():
    from ray import tune

    class PruneCheckpoints(tune.Callback):
        """When a trial ends (finished or stopped), drop everything but its best checkpoint. Errored
        trials keep their latest one, so `pairtune resume` can continue them."""

        def on_trial_complete(self, iteration, trials, trial, **info):
            if trial.path:  # the trial's directory in storage_path, inside its (local or shared) filesystem
                storage.prune_checkpoints(trial.storage.storage_filesystem, trial.path, CHECKPOINT_SCORE, RESUME_FILE)

    return PruneCheckpoints()
