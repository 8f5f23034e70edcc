"""`pairtune` command line: the parser is the table of subcommands below, one module per group:

    search, resume, extend,      searching.py  run, continue, extend or dry-run a Ray Tune search of a YAML config
    check
    train, predict, ensemble     models.py     train one configuration (e.g. an exported best.yaml); score texts;
                                               ensemble a search's best trials
    baseline, lr-find            models.py     the TF-IDF + ridge floor; a learning-rate range test
    export, report, status,      reading.py    read a run: best config and leaderboard, plots, live leaderboard,
    dashboard                                  optuna-dashboard over its study
    submit                       cluster.py    run a search as a Ray job on a cluster

Each group's COMMANDS maps a name to (add its arguments, run it, help, description). Only light modules
are imported here; each command imports what it needs when it runs, so --help and reading a run never
pay for torch, Ray or Lightning.

User errors (config, data, backbone, precision) print one line each and exit 2, without a traceback;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import logging
import os
import signal
import sys
from pathlib import Path

# Each trial prints one line per validation; Ray's log deduplication (read when ray is imported)
# would fold the lines of different trials into "[repeated Nx across cluster]".
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

from search.cli import cluster, models, reading, searching
from search.cli.common import print_errors
from search.config.parse import ConfigError

log = logging.getLogger("pairtune")

GROUPS = (searching, models, reading, cluster)  # the order of `pairtune --help`

# Errors that are the user's (config, data, backbone, precision, model directory), by module: a
# module this process never imported cannot have raised its error, so reading a run or printing
# --help never imports torch to check (model.checkpoint and model.precision import it).
USER_ERRORS = {
    "search.config.parse": "ConfigError",
    "data.pairs": "DataError",
    "model.backbone": "BackboneError",
    "model.precision": "PrecisionError",
    "model.checkpoint": "CheckpointError",
}


def is_user_error(e: BaseException) -> bool:
    return any(isinstance(e, getattr(sys.modules[module], name))
               for module, name in USER_ERRORS.items() if module in sys.modules)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pairtune", description="Hyperparameter search for transformer text rankers trained on pair votes.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        for name, (add_args, run, help_line, description) in group.COMMANDS.items():
            p = sub.add_parser(name, help=help_line, description=description)
            add_args(p)
            p.set_defaults(func=run)
    return parser


def freeze_at_exit() -> None:
    """At exit, Python's last garbage collection walks every object torch, transformers and Lightning
    made at import: seconds after the command's last line (a tiny search's last line to its exit: 9.6
    and 12.6 s without, 3.0 and 3.7 s with, on a busy 2-core machine). Frozen, they are skipped. The
    atexit handlers registered later (Ray's shutdown, trackers) still run first, and module teardown
    still runs; only that walk goes."""
    atexit.unregister(gc.freeze)  # once per process, however often main() runs in it
    atexit.register(gc.freeze)


def main(argv: list[str] | None = None) -> int:
    freeze_at_exit()
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if getattr(args, "config", None) is not None:
            _refuse_a_directory_for_a_config(args.config)
        return args.func(args)
    except Exception as e:
        if not is_user_error(e):
            raise  # a bug: keep its traceback
        print_errors(e)
        return 2
    except KeyboardInterrupt as e:  # Ctrl-C before Tune ran (nothing to save), or a second stop signal
        signum = getattr(e, "signum", signal.SIGINT)
        print(f"\npairtune: interrupted by {signal.Signals(signum).name}", file=sys.stderr)
        return 128 + signum


def _refuse_a_directory_for_a_config(path: str) -> None:
    """A run or model directory named where a config file belongs: say which file was meant."""
    from search.runs.layout import not_a_config

    problem = not_a_config(Path(path))
    if problem:
        raise ConfigError([problem])


if __name__ == "__main__":
    sys.exit(main())
