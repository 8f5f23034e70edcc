"""`pairtune search`, `resume`, `extend` and `check`: run, continue or dry-run a search; what a finished or
interrupted search prints."""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
from pathlib import Path

from search.cli.common import add_config_args, add_ray_address_arg, print_errors
from search.cli.reading import print_export
from search.config.parse import ConfigError
from search.tune.interrupt import StopSignals


def cmd_check(args) -> int:
    from search.config.load import load_config
    from search.tune.preflight import describe, dry_run

    cfg = load_config(args.config, args.overrides)
    print(describe(cfg, dry_run(cfg, args.address)))
    print("\nok: the config and data are valid; nothing was started")
    return 0


def cmd_search(args) -> int:
    from search.config.load import load_config
    from search.tune.tuner import run_search

    if args.dry_run:
        return cmd_check(args)
    cfg = load_config(args.config, args.overrides)
    signals = StopSignals()
    return _finish(*run_search(cfg, address=args.address, signals=signals), stopped_by=signals.received)


def cmd_resume(args) -> int:
    from search.tune.tuner import resume_search

    signals = StopSignals()
    return _finish(*resume_search(args.run, address=args.address, signals=signals), stopped_by=signals.received)


def cmd_extend(args) -> int:
    from search.tune.tuner import resume_search

    signals = StopSignals()
    return _finish(*resume_search(args.run, address=args.address, signals=signals, more_trials=args.trials),
                   stopped_by=signals.received)


def _interrupted(results, run, signum: int) -> int:
    """A search that SIGINT / SIGTERM stopped: no export (its best is not the search's best), a
    non-zero status (128 + the signal, as a shell reports it), and how to go on."""
    name = signal.Signals(signum).name
    errors = sum(1 for r in results if r.error)
    print(f"\nsearch interrupted by {name}: {len(results)} trials started, {errors} errored; its state is saved in {run}",
          file=sys.stderr)
    print(f"continue it with:  pairtune resume {shlex.quote(str(run))}", file=sys.stderr)
    print(f"results so far:    pairtune status {shlex.quote(str(run))}  (or pairtune export)", file=sys.stderr)
    return 128 + signum


def _finish(results, run, stopped_by: int | None = None) -> int:
    from search.runs.export import export_run
    from search.runs.results import DamagedRun

    if stopped_by is not None:
        return _interrupted(results, run, stopped_by)
    errors = [r for r in results if r.error]
    print(f"\nsearch finished: {len(results)} trials, {len(errors)} errored; results in {run}")
    for r in errors:
        print(f"  errored: {Path(r.path).name}: {str(r.error).strip().splitlines()[-1][:200]}")
    try:
        exported = export_run(run)
    except DamagedRun as e:  # the winner cannot be decided honestly: say which files, keep any earlier export
        print_errors(e)
        return 2
    except ConfigError as e:
        print(f"nothing to export: {e}")
        return 1
    print_export(exported)
    return 0


def search_args(p) -> None:
    add_config_args(p)
    add_ray_address_arg(p)
    p.add_argument("--dry-run", action="store_true", help="validate and summarise as `pairtune check` does, then stop")


def resume_args(p) -> None:
    p.add_argument("run", help="run directory, e.g. ~/pairtune_results/quickstart")
    add_ray_address_arg(p)


def positive_int(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {n}")
    return n


def extend_args(p) -> None:
    p.add_argument("run", help="run directory or URI, e.g. ~/pairtune_results/quickstart")
    p.add_argument("--trials", type=positive_int, required=True, metavar="N", help="how many trials to add (1 or more)")
    add_ray_address_arg(p)


def check_args(p) -> None:
    add_config_args(p)
    p.add_argument("--address", default=None, help="the cluster the search will run on (skips the local resource check)")


COMMANDS = {
    "search": (search_args, cmd_search, "run a Ray Tune search (Optuna TPE + ASHA) and export the best config",
               "Validate the config and data, then search with Ray Tune; ends by exporting the best config."),
    "resume": (resume_args, cmd_resume, "continue an interrupted search (finished trials are kept, running ones continue)",
               "Continue a search whose driver died: finished trials are not rerun, unfinished and errored ones "
               "continue from their latest checkpoint, the searcher keeps its history."),
    "extend": (extend_args, cmd_extend, "continue a finished or interrupted search with N more trials",
               "Run N more trials in a finished or interrupted search: TPE keeps everything it learnt, ASHA "
               "judges the new trials against the rungs the earlier ones reached, budgets start afresh, and an "
               "interrupted search's unfinished trials continue first (errored ones stay errored: `pairtune resume` "
               "retries them). The leaderboard then has the old trials plus N."),
    "check": (check_args, cmd_check, "validate a config and its data exactly as a search would, without starting Ray",
              "Dry run: validate config, backbones, resources and data; print a summary; start nothing."),
}
