"""Ctrl-C (SIGINT) and SIGTERM during a search: Ray Tune's graceful stop, and a record of the signal.

Ray Tune stops a search gracefully on SIGINT (trials stop, the experiment state is saved one last
time), then `Tuner.fit` returns a ResultGrid exactly as if the search had ended: nothing says it was
interrupted (Ray 2.60 keeps that in a local event of `tune.run`). SIGTERM, which `ray job stop`,
schedulers and `kill` send, is worse: `ray.init` installs a handler that exits in the middle of Tune's
loop (the driver aborts with a C++ stack dump, exit 134, state not saved).

`StopSignals` takes both signals while Tune runs: the first one is recorded and handed to Tune's
graceful stop (the handler Tune registers on SIGUSR1 for exactly this, ray/tune/tune.py
`_setup_signal_catching`); a second one stops at once (KeyboardInterrupt), as a second Ctrl-C does
with Tune alone. The CLI then exits 128 + the signal's number and prints how to resume.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
TUNE_SIGINT_ENV = "TUNE_DISABLE_SIGINT_HANDLER"  # else Tune replaces our SIGINT handler when fit() starts


class Interrupted(KeyboardInterrupt):
    """A stop signal that could not wait for Tune's graceful stop (Tune was not running yet, or a
    second signal came)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopSignals:
    """Context manager around Tuner.fit() (install it after ray.init, whose SIGTERM handler it
    replaces); `received` is the first stop signal's number, or None."""

    def __init__(self):
        self.received: int | None = None
        self._saved: dict = {}
        self._env: str | None = None

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is not threading.main_thread():  # only the main thread can
            return self
        self._env = os.environ.get(TUNE_SIGINT_ENV)
        os.environ[TUNE_SIGINT_ENV] = "1"
        # SIGUSR1 is Tune's stop while fit() runs; until then, a stale handler from an earlier fit()
        # in this process must not be mistaken for it.
        for sig, handler in [*((s, self._handle) for s in STOP_SIGNALS), (signal.SIGUSR1, signal.SIG_DFL)]:
            self._saved[sig] = signal.signal(sig, handler)
        return self

    def __exit__(self, *exc) -> bool:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)
        self._saved.clear()
        if self._env is None:
            os.environ.pop(TUNE_SIGINT_ENV, None)
        else:
            os.environ[TUNE_SIGINT_ENV] = self._env
        return False

    def _handle(self, signum: int, frame) -> None:
        name = signal.Signals(signum).name
        if self.received is not None:
            raise Interrupted(signum)
        self.received = signum
        tune_stop = signal.getsignal(signal.SIGUSR1)
        if not callable(tune_stop):  # Tune's loop is not running yet: nothing to save
            raise Interrupted(signum)
        log.warning("%s received: stopping the search and saving its state (send it again to stop at once)", name)
        tune_stop(signal.SIGUSR1, frame)
