"""Running on a Ray cluster: which cluster to join, and trials that read well on its dashboard."""

from __future__ import annotations

import os


def cluster_address(address: str | None) -> str | None:
    """The cluster to join: --address, else RAY_ADDRESS (set by Ray inside a submitted job, or by
    the user); None starts a local Ray instance."""
    return address or os.environ.get("RAY_ADDRESS") or None


def named_trainable(trainable):
    """The trial function as a Trainable class whose actors are named after their trial on the
    dashboard (Actors page, log prefixes): trial id and sampled values, as in Tune's table, instead
    of every trial showing as `run_trial`."""
    from ray.tune.trainable import wrap_function

    base = wrap_function(trainable, name="pairtune_trial")

    class PairtuneTrial(base):
        def __repr__(self) -> str:
            info = getattr(self, "_trial_info", None)
            return info.trial_name if info is not None and info.trial_name else "pairtune_trial"

        def cleanup(self) -> None:
            try:
                super().cleanup()
            finally:  # a data-parallel trial's workers and placement group go with the trial
                from search.tune.ddp import release

                release()

    return PairtuneTrial
