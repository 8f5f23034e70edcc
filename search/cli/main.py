"""`pairtune` command line: one small `cmd_*` function per subcommand (see build_parser):

    search, resume, check        run, continue or dry-run a Ray Tune search of a YAML config
    train, predict               train one configuration (e.g. an exported best.yaml); score texts
    baseline, lr-find            the TF-IDF + ridge floor; a learning-rate range test
    export, report, status       read a run: best config and leaderboard, plots, live leaderboard
    submit                       run a search as a Ray job on a cluster

Only light modules are imported here; each command imports what it needs when it runs, so --help
and reading a run never pay for torch, Ray or Lightning.

User errors (config, data, backbone, precision) print one line each and exit 2, without a traceback;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import signal
import sys
from pathlib import Path

# Each trial prints one line per validation; Ray's log deduplication (read when ray is imported)
# would fold the lines of different trials into "[repeated Nx across cluster]".
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

from search.config.parse import ConfigError
from search.tune.interrupt import StopSignals

log = logging.getLogger("pairtune")

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


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML config (see configs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set train.lr=3e-4 (repeatable)")


def cmd_check(args) -> int:
    from search.config.parse import load_config
    from search.tune.check import check, describe

    cfg = load_config(args.config, args.overrides)
    print(describe(cfg, check(cfg, args.address)))
    print("\nok: the config and data are valid; nothing was started")
    return 0


def cmd_search(args) -> int:
    from search.config.parse import load_config
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
        _print_errors(e)
        return 2
    except ConfigError as e:
        print(f"nothing to export: {e}")
        return 1
    _print_export(exported)
    return 0


def _ended_line(summary: dict) -> str:
    reason = summary.get("ended_by")
    detail = {
        "time_budget": f"time budget of {summary.get('time_budget_s')} s reached",
        "target": f"target {summary.get('target')} reached by trial {summary.get('trial_id')} ({summary.get('value', 0):.4f})",
        "epoch_budget": f"epoch budget of {summary.get('epoch_budget')} epochs reached",
        "num_samples": "all num_samples trials ran",
        "interrupted": "interrupted before any budget was reached (pairtune resume continues it)",
    }
    return f"search ended: {detail.get(reason, reason)}"


def cmd_train(args) -> int:
    from search.config.parse import load_config
    from search.recipes.train import parse_folds, train_config

    cfg = load_config(args.config, args.overrides)
    result = train_config(cfg, args.out, folds=parse_folds(args.folds, cfg), full=args.full)
    if result.get("full"):
        print(f"\ntrained on all {result['votes']} votes for {result['epochs']} epochs (train.epochs); "
              "no validation, so no agreement to report")
    elif result.get("ensemble"):
        print(f"\n{result['metric']} per fold (best epoch):")
        for r in result["folds"]:
            print(f"  fold {r['fold']}: {r['best_agreement']:.4f} at epoch {r['best_epoch']:g}  -> {r['checkpoint']}")
        print(f"mean {result['mean_agreement']:.4f} (std {result['std_agreement']:.4f}) over {len(result['folds'])} folds")
    else:
        extra = "" if result["metric"] == "val/agreement" else f" (val/agreement {result['best_agreement']:.4f})"
        print(f"\nbest {result['metric']}: {result['best_value']:.4f}{extra} at epoch {result['best_epoch']:g}")
    print(f"model saved to {result['checkpoint']}")
    return 0


def cmd_predict(args) -> int:
    from search.recipes.predict import predict

    r = predict(args.model, args.texts, args.out, args.id_column, args.text_column, args.batch_size,
                progress=not args.no_progress)
    print(f"scored {r['rows']} rows ({r['unique_texts']} unique texts) with {len(r['models'])} model(s), "
          f"{r['combined']}, in {r['seconds']:.1f}s")
    print(f"scores written to {r['out']}")
    return 0


def cmd_baseline(args) -> int:
    from model.baseline import DESCRIPTION
    from search.config.parse import load_config
    from search.tune.baseline import baseline_for_config

    cfg = load_config(args.config, args.overrides)
    r = baseline_for_config(cfg)
    print(f"{DESCRIPTION}, fold {r['fold']} of {cfg.data.folds}: fitted on {r['train_texts']} texts, "
          f"validated on {r['val_votes']} votes in {r['seconds']:.1f}s")
    print(f"val/agreement {r['agreement']:.4f}   (longer-is-more-toxic: {r['length_agreement']:.4f})")
    return 0


def add_baseline_parser(sub) -> None:
    p = sub.add_parser("baseline", help="TF-IDF + ridge agreement on the config's fold: the floor a search should beat",
                       description="Fit TF-IDF (char 3-5) + ridge on the training fold (target: each text's share of won "
                                   "votes) and report validation agreement, computed as the search computes it.")
    _add_config_args(p)
    p.set_defaults(func=cmd_baseline)


def cmd_lr_find(args) -> int:
    from search.config.parse import load_config
    from search.recipes.lr_find import find_lr, suggested_range, write_lr_range

    cfg = load_config(args.config, args.overrides)
    r = find_lr(cfg, args.min_lr, args.max_lr, args.steps, progress=not args.no_progress)
    print(f"\nlearning-rate range test: {r['steps']} steps from {args.min_lr:g} to {args.max_lr:g} "
          f"on {r['train_votes']} training votes")
    if r["suggestion"] is None:
        print("no suggestion: too few finite loss points (more --steps, more votes, or a lower --max-lr)")
        return 1
    low, high = suggested_range(r["suggestion"])
    print(f"suggested learning rate: {r['suggestion']:.3g}   (config's train.lr: {r['config_lr']:g})")
    print(f"search range:            train.lr: {{loguniform: [{low:g}, {high:g}]}}")
    if args.write:
        path, notes = write_lr_range(args.config, args.write, r["suggestion"])
        for note in notes:
            print(f"note: {note}")
        print(f"config written to {path}")
    return 0


def add_lr_find_parser(sub) -> None:
    p = sub.add_parser("lr-find", help="Lightning's learning-rate range test on the config's fold; suggests a search range",
                       description="Grow the learning rate exponentially over --steps optimizer steps on the config's "
                                   "training fold and suggest the rate where the loss falls fastest (Lightning's "
                                   "Tuner.lr_find). --write OUT.yaml copies the config file with search.space.train.lr "
                                   "set to loguniform [suggestion/10, suggestion*3] (--set overrides are not written).")
    _add_config_args(p)
    p.add_argument("--min-lr", type=float, default=1e-7, help="start of the range test (default: 1e-7)")
    p.add_argument("--max-lr", type=float, default=1e-1, help="end of the range test (default: 0.1)")
    p.add_argument("--steps", type=int, default=100, help="optimizer steps of the range test (default: 100)")
    p.add_argument("--write", default=None, metavar="OUT.yaml", help="write the config with the narrowed train.lr range")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_lr_find)


def _print_export(e) -> None:
    from search.runs import storage

    cols = [c for c in e.leaderboard.columns if c not in ("error",)]
    print("\nleaderboard (best first):")
    print(e.leaderboard[cols].head(20).to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    print(f"\n{_ended_line(e.summary)}")
    metric = e.summary.get("metric", "val/agreement")
    if metric != "val/agreement":
        print(f"best {metric} {e.summary['best_value']:.4f} (its val/agreement {e.best_agreement:.4f})")
    else:
        print(f"best agreement {e.best_agreement:.4f}")
    if e.baseline is not None:
        from model.baseline import describe

        print(describe(e.baseline, e.best_agreement))
    print(f"best config:     {e.best_yaml}")
    print(f"best checkpoint: {e.best_checkpoint}")
    print(f"leaderboard:     {storage.join(e.out_dir, 'leaderboard.csv')}")
    if storage.is_uri(e.best_yaml):
        print(f"train it with:   pairtune export {shlex.quote(storage.parent(e.out_dir))} --out DIR, then pairtune train DIR/best.yaml")
    else:
        print(f"train it with:   pairtune train {shlex.quote(str(e.best_yaml))}")


def cmd_export(args) -> int:
    from search.runs.export import export_run

    _print_export(export_run(args.run, args.out))
    return 0


def cmd_report(args) -> int:
    from search.runs.report import report_run

    report = report_run(args.run, args.out)
    for note in report.notes:
        print(f"note: {note}")
    print(f"report: {report.index} ({len(report.plots)} plots)")
    return 0


def cmd_submit(args) -> int:
    from search.cli.submit import follow, submit

    client, job_id = submit(args.config, args.overrides, args.address, args.working_dir, args.token_file)
    print(f"submitted job {job_id} to {client.get_address()}")
    print(f"follow it with: ray job logs --follow {shlex.quote(job_id)} --address {shlex.quote(client.get_address())}")
    if args.no_wait:
        return 0
    status = follow(client, job_id)
    print(f"job {job_id}: {status}")
    return 0 if status == "SUCCEEDED" else 1


def cmd_status(args) -> int:
    from search.runs.status import watch

    watch(args.run, args.watch)
    return 0


def _add_ray_address_arg(p) -> None:
    p.add_argument("--address", default=None,
                   help="Ray cluster address (default: RAY_ADDRESS, set inside a Ray job; else start a local Ray instance)")


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
    _add_ray_address_arg(p)
    p.add_argument("--dry-run", action="store_true", help="validate and summarise as `pairtune check` does, then stop")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("resume", help="continue an interrupted search (finished trials are kept, running ones continue)",
                       description="Continue a search whose driver died: finished trials are not rerun, unfinished and "
                                   "errored ones continue from their latest checkpoint, the searcher keeps its history.")
    p.add_argument("run", help="run directory, e.g. ~/pairtune_results/quickstart")
    _add_ray_address_arg(p)
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("check", help="validate a config and its data exactly as a search would, without starting Ray",
                       description="Dry run: validate config, backbones, resources and data; print a summary; start nothing.")
    _add_config_args(p)
    p.add_argument("--address", default=None, help="the cluster the search will run on (skips the local resource check)")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("train", help="train one configuration (e.g. an exported best.yaml) and report agreement",
                       description="Train the config's fixed values (search.space is ignored) on its fold, on every fold "
                                   "(--folds all) or on all votes (--full); each model directory is self-contained.")
    _add_config_args(p)
    p.add_argument("--out", default=None, help="directory for the model (default: pairtune_train/<search.name>)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--folds", default=None, metavar="all|K,K,...",
                       help="train one model per fold into OUT/fold_K (a fold ensemble for `pairtune predict`)")
    which.add_argument("--full", action="store_true",
                       help="train on all votes with no validation, for train.epochs epochs; saves the last epoch")
    p.set_defaults(func=cmd_train)

    add_predict_parser(sub)
    add_baseline_parser(sub)
    add_lr_find_parser(sub)

    p = sub.add_parser("export", help="write best.yaml, leaderboard.csv and summary.json of a search run",
                       description="Read a search run directory (storage_path/name) and export its results.")
    p.add_argument("run", help="run directory or URI, e.g. ~/pairtune_results/quickstart or s3://bucket/pairtune/NAME")
    p.add_argument("--out", default=None, help="output directory or URI (default: RUN/export)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("report", help="write an HTML report with plots of a search run (progress, best so far, importances)",
                       description="Plot a search run: every trial's metric over time with ASHA's stops, the best so far "
                                   "against compute, parameter importances (fANOVA) and the metric against each parameter.")
    p.add_argument("run", help="run directory, e.g. ~/pairtune_results/quickstart")
    p.add_argument("--out", default=None, help="output directory (default: RUN/report)")
    p.set_defaults(func=cmd_report)
    _add_cluster_parsers(sub)
    return parser


def add_predict_parser(sub) -> None:
    p = sub.add_parser("predict", help="score a CSV of texts with a trained model or a fold ensemble",
                       description="Score the texts of a CSV (comment_id,text, as Jigsaw's comments_to_score.csv) with "
                                   "one model directory (raw scores) or a directory of fold_K/ models (rank average "
                                   "in [0, 1]); writes ID,score, one row per input row, in input order.")
    p.add_argument("model", help="a model directory (from `pairtune train`) or a fold ensemble directory (--folds all)")
    p.add_argument("texts", help="CSV with an id column and a text column")
    p.add_argument("-o", "--out", required=True, help="output CSV (ID,score)")
    p.add_argument("--id-column", default="comment_id", help="id column of the CSV (default: comment_id)")
    p.add_argument("--text-column", default="text", help="text column of the CSV (default: text)")
    p.add_argument("--batch-size", type=int, default=128, help="texts per forward pass (default: 128)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_predict)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if getattr(args, "config", None) is not None:
            _refuse_a_directory_for_a_config(args.config)
        return args.func(args)
    except Exception as e:
        if not is_user_error(e):
            raise  # a bug: keep its traceback
        _print_errors(e)
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


def _print_errors(e: Exception) -> None:
    for line in str(e).splitlines():
        print(f"pairtune: error: {line}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
