"""Running on a Ray cluster: which cluster to join, and trials that read well on its dashboard."""

from __future__ import annotations

import os
import sys


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

        def reset_config(self, new_config) -> bool:
            """A reused process (search.reuse_trial_processes) takes its new trial's name."""
            if not super().reset_config(new_config):
                return False
            announce_name(repr(self))
            return True

        def cleanup(self) -> None:
            try:
                super().cleanup()
            finally:  # a data-parallel trial's workers and placement group go with the trial
                from search.tune.ddp import release

                release()

    return PairtuneTrial


def announce_name(name: str) -> None:
    """Name this trial process after the trial it now runs in the prefix of its log lines, as Ray does
    when an actor starts: Ray's log monitor reads this token from the process's output. (The dashboard's
    Actors page keeps the name the process started with; Ray 2.60 has no call that renames an actor.)
    Nothing here may raise: Ray 2.60 takes an error in a reused trial's reset down with the whole search."""
    from ray._private.ray_constants import LOG_PREFIX_ACTOR_NAME

    token = f"{LOG_PREFIX_ACTOR_NAME}{name}\n"
    print(token, end="", flush=True)
    print(token, end="", file=sys.stderr, flush=True)
