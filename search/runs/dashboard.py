"""`pairtune dashboard RUN`: optuna-dashboard over the run's study (search/runs/study.py), during the
search or after it, for a local run or one on s3:// / gs://.

optuna-dashboard has no authentication and can change a study, so it listens on 127.0.0.1 only (reach
it from elsewhere through an SSH tunnel). A local run's journal is read in place, as the search writes
it. A run on shared storage is read from a copy on this machine, fetched again every `refresh_s`
seconds: it is as fresh as the copy the search's driver last put there (each time it saved its state).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

from search.runs import storage, study

log = logging.getLogger(__name__)
HOST = "127.0.0.1"


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # one line per request, every second while a page is open
        pass


def _refresh(run, path: Path, every_s: float, stop: threading.Event) -> None:
    while not stop.wait(every_s):
        try:
            fresh = study.fetch(run, path.with_suffix(".new"))
            os.replace(fresh, path)  # the journal only grows: the storage reads on from where it was
        except OSError as e:  # a network error, or the run gone: keep the last copy, try again
            log.warning("could not fetch %s's study again: %s", run, e)


def make_dashboard(run, port: int, refresh_s: float = 30.0):
    """A WSGI server for the run's study on HOST:port (0: any free port), not yet serving, and a
    function that stops what it started. ConfigError when `run` is not a run; FileNotFoundError when
    it has no study; OSError when the port is taken."""
    run = storage.location(run)
    stop = threading.Event()
    copy = Path(tempfile.mkdtemp(prefix="pairtune-dashboard-")) if storage.is_uri(run) else None

    def clean_up():
        stop.set()
        if copy is not None:
            shutil.rmtree(copy, ignore_errors=True)

    try:
        path = study.fetch(run, copy / study.STUDY_FILE if copy is not None else None)
        from optuna_dashboard import wsgi

        server = make_server(HOST, port, wsgi(study.journal_storage(path)), handler_class=_QuietHandler)
    except BaseException:
        clean_up()
        raise
    if copy is not None:
        threading.Thread(target=_refresh, args=(run, path, refresh_s, stop), daemon=True).start()

    def close():
        server.server_close()
        clean_up()

    return server, close
