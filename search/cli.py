"""`pairtune` command line: search, train, export.

User errors (config, data, backbone, precision) print one line each and exit 2, without a traceback;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from data import DataError
from model.backbone import BackboneError
from model.precision import PrecisionError
from search.config import ConfigError

log = logging.getLogger("pairtune")

USER_ERRORS = (ConfigError, DataError, BackboneError, PrecisionError)


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML config (see configs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set train.lr=3e-4 (repeatable)")


def cmd_check(args) -> int:
    from search.check import check, describe
    from search.config import load_config

    cfg = load_config(args.config, args.overrides)
    print(describe(cfg, check(cfg, args.address)))
    print("\nok: the config and data are valid; nothing was started")
    return 0


def cmd_search(args) -> int:
    from search.config import load_config
    from search.tuner import run_search

    if args.dry_run:
        return cmd_check(args)
    cfg = load_config(args.config, args.overrides)
    return _finish(*run_search(cfg, address=args.address))


def cmd_resume(args) -> int:
    from search.tuner import resume_search

    return _finish(*resume_search(args.run, address=args.address))


def _finish(results, run) -> int:
    from search.export import export_run

    errors = [r for r in results if r.error]
    print(f"\nsearch finished: {len(results)} trials, {len(errors)} errored; results in {run}")
    for r in errors:
        print(f"  errored: {Path(r.path).name}: {str(r.error).strip().splitlines()[-1][:200]}")
    try:
        exported = export_run(run)
    except ConfigError as e:
        print(f"nothing to export: {e}")
        return 1
    _print_export(exported)
    return 0


def cmd_train(args) -> int:
    from search.config import load_config
    from search.train_cmd import train_config

    cfg = load_config(args.config, args.overrides)
    result = train_config(cfg, args.out)
    print(f"\nbest {result['metric']}: {result['best_agreement']:.4f} at epoch {result['best_epoch']:g}")
    print(f"model saved to {result['checkpoint']}")
    return 0


def _print_export(e) -> None:
    from search import storage

    cols = [c for c in e.leaderboard.columns if c not in ("error",)]
    print("\nleaderboard (best first):")
    print(e.leaderboard[cols].head(20).to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    print(f"\nbest agreement {e.best_agreement:.4f}")
    print(f"best config:     {e.best_yaml}")
    print(f"best checkpoint: {e.best_checkpoint}")
    print(f"leaderboard:     {storage.join(e.out_dir, 'leaderboard.csv')}")
    if storage.is_uri(e.best_yaml):
        print(f"train it with:   pairtune export {storage.parent(e.out_dir)} --out DIR, then pairtune train DIR/best.yaml")
    else:
        print(f"train it with:   pairtune train {e.best_yaml}")


def cmd_export(args) -> int:
    from search.export import export_run

    _print_export(export_run(args.run, args.out))
    return 0


def cmd_submit(args) -> int:
    from search.submit import follow, submit

    client, job_id = submit(args.config, args.overrides, args.address, args.working_dir, args.token_file)
    print(f"submitted job {job_id} to {client.get_address()}")
    print(f"follow it with: ray job logs --follow {job_id} --address {client.get_address()}")
    if args.no_wait:
        return 0
    status = follow(client, job_id)
    print(f"job {job_id}: {status}")
    return 0 if status == "SUCCEEDED" else 1


def cmd_status(args) -> int:
    from search.status import watch

    watch(args.run, args.watch)
    return 0


def _add_cluster_parsers(sub) -> None:
    p = sub.add_parser("submit", help="run a search as a Ray job on a cluster (validates locally, uploads, follows the logs)",
                       description="Validate CONFIG here, then submit `pairtune search CONFIG` as a Ray job through the "
                                   "cluster dashboard's Jobs API, with the working directory uploaded; follow its logs.")
    _add_config_args(p)
    p.add_argument("--address", default=None,
                   help="dashboard URL (default: RAY_API_SERVER_ADDRESS or RAY_ADDRESS if a URL, else http://127.0.0.1:8265, "
                        "where `ray dashboard cluster.yaml` forwards it)")
    p.add_argument("--working-dir", default=".", help="directory uploaded as the job's working directory; CONFIG must be inside it")
    p.add_argument("--token-file", default=None,
                   help="the cluster's auth token (default: RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token)")
    p.add_argument("--no-wait", action="store_true", help="submit and return; do not follow the logs")
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("status", help="leaderboard of a running or finished search, read from its storage path",
                       description="Print the leaderboard of RUN (a local directory or s3:// / gs:// URI), from any machine "
                                   "that can read it; with --watch, refresh until no trial is pending or running.")
    p.add_argument("run", help="run directory or URI, e.g. s3://bucket/pairtune/jigsaw-roberta")
    p.add_argument("--watch", type=float, default=None, metavar="SECONDS", help="refresh every SECONDS until the search ends")
    p.set_defaults(func=cmd_status)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pairtune", description="Hyperparameter search for transformer text rankers trained on pair votes.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("search", help="run a Ray Tune search (Optuna TPE + ASHA) and export the best config",
                       description="Validate the config and data, then search with Ray Tune; ends by exporting the best config.")
    _add_config_args(p)
    p.add_argument("--address", default=None,
                   help="Ray cluster address (default: RAY_ADDRESS, set inside a Ray job; else start a local Ray instance)")
    p.add_argument("--dry-run", action="store_true", help="validate and summarise as `pairtune check` does, then stop")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("resume", help="continue an interrupted search (finished trials are kept, running ones continue)",
                       description="Continue a search whose driver died: finished trials are not rerun, unfinished and "
                                   "errored ones continue from their latest checkpoint, the searcher keeps its history.")
    p.add_argument("run", help="run directory, e.g. ~/pairtune_results/quickstart")
    p.add_argument("--address", default=None,
                   help="Ray cluster address (default: RAY_ADDRESS, set inside a Ray job; else start a local Ray instance)")
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("check", help="validate a config and its data exactly as a search would, without starting Ray",
                       description="Dry run: validate config, backbones, resources and data; print a summary; start nothing.")
    _add_config_args(p)
    p.add_argument("--address", default=None, help="the cluster the search will run on (skips the local resource check)")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("train", help="train one configuration (e.g. an exported best.yaml) and report agreement",
                       description="Train the config's fixed values on its fold (search.space is ignored) and save the best epoch.")
    _add_config_args(p)
    p.add_argument("--out", default=None, help="directory for the model (default: pairtune_train/<search.name>)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("export", help="write best.yaml, leaderboard.csv and summary.json of a search run",
                       description="Read a search run directory (storage_path/name) and export its results.")
    p.add_argument("run", help="run directory or URI, e.g. ~/pairtune_results/quickstart or s3://bucket/pairtune/NAME")
    p.add_argument("--out", default=None, help="output directory or URI (default: RUN/export)")
    p.set_defaults(func=cmd_export)
    _add_cluster_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except USER_ERRORS as e:
        for line in str(e).splitlines():
            print(f"pairtune: error: {line}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
