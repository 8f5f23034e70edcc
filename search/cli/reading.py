"""`pairtune export`, `report`, `status` and `dashboard`: read a run (local or s3:// / gs://) and print or serve it.
Imports neither torch, Ray nor Lightning here; export asks Ray for the best checkpoint when it runs."""

from __future__ import annotations

import shlex

from search.cli.common import positive_seconds
from search.config.parse import ConfigError


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


def _best_line(summary: dict, best_agreement: float) -> str:
    """The best value, on how many votes, and how sure: the bootstrap interval when the run kept its
    trials' scores, else the rough +- of votes taken as independent."""
    from search.runs.intervals import UNIT_NAMES, interval_text  # pandas and numpy: not for --help

    metric = summary.get("metric", "val/agreement")
    votes, noise = summary.get("val_votes"), summary.get("val_agreement_noise_95")
    intervals = summary.get("intervals", {})
    interval = interval_text(intervals)
    if interval and intervals.get("best_trial") == summary.get("best_trial"):
        fold = f" on {votes} validation votes ({interval}, resampling {intervals['units']} {UNIT_NAMES[intervals['resampled']]})"
    elif votes and noise:
        fold = f" on {votes} validation votes (+-{noise:.3f} at 95%, votes taken as independent)"
    else:
        fold = ""
    if metric != "val/agreement":
        return f"best {metric} {summary['best_value']:.4f} (its val/agreement {best_agreement:.4f}{fold})"
    return f"best agreement {best_agreement:.4f}{fold}"


def print_export(e) -> None:
    from search.runs import storage
    from search.runs.intervals import tied_line

    cols = [c for c in e.leaderboard.columns if c not in ("error",)]
    print("\nleaderboard (best first):")
    print(e.leaderboard[cols].head(20).to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    print(f"\n{_ended_line(e.summary)}")
    metric = e.summary.get("metric", "val/agreement")
    print(_best_line(e.summary, e.best_agreement))
    tied = tied_line(e.summary.get("intervals", {}))
    if tied:
        print(tied)
    board = e.leaderboard
    stopped = board.trial_id[board.outcome == "stopped_by_asha"].tolist() if len(board) else []
    if stopped:
        more = f" and {len(stopped) - 10} more (the leaderboard's outcome column)" if len(stopped) > 10 else ""
        print(f"ASHA stopped {len(stopped)} of {len(board)} trials early: {', '.join(stopped[:10])}{more}")
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

    print_export(export_run(args.run, args.out))
    return 0


def cmd_report(args) -> int:
    from search.runs.report import report_run

    report = report_run(args.run, args.out)
    for note in report.notes:
        print(f"note: {note}")
    print(f"report: {report.index} ({len(report.plots)} plots)")
    return 0


def cmd_status(args) -> int:
    from search.runs.status import watch

    watch(args.run, args.watch)
    return 0


def cmd_dashboard(args) -> int:
    from search.runs.dashboard import HOST, make_dashboard

    try:
        server, close = make_dashboard(args.run, args.port)
    except FileNotFoundError as e:  # no study in the run: said as every command says a user's error
        raise ConfigError([str(e)]) from None
    except OSError as e:
        raise ConfigError([f"cannot listen on {HOST}:{args.port} ({e.strerror or e}); choose another with --port"]) from None
    port = server.server_address[1]
    print(f"optuna-dashboard for {args.run}: http://{HOST}:{port}/dashboard/ (this machine only; Ctrl-C stops it)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        close()
    return 0


def dashboard_args(p) -> None:
    p.add_argument("run", help="run directory or URI, e.g. ~/pairtune_results/quickstart or s3://bucket/pairtune/NAME")
    p.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (default 8080; 0: any free port)")


def export_args(p) -> None:
    p.add_argument("run", help="run directory or URI, e.g. ~/pairtune_results/quickstart or s3://bucket/pairtune/NAME")
    p.add_argument("--out", default=None, help="output directory or URI (default: RUN/export)")


def report_args(p) -> None:
    p.add_argument("run", help="run directory, e.g. ~/pairtune_results/quickstart")
    p.add_argument("--out", default=None, help="output directory (default: RUN/report)")


def status_args(p) -> None:
    p.add_argument("run", help="run directory or URI, e.g. s3://bucket/pairtune/jigsaw-roberta")
    p.add_argument("--watch", type=positive_seconds, default=None, metavar="SECONDS", help="refresh every SECONDS until the search ends")


COMMANDS = {
    "export": (export_args, cmd_export, "write best.yaml, leaderboard.csv and summary.json of a search run",
               "Read a search run directory (storage_path/name) and export its results."),
    "report": (report_args, cmd_report, "write an HTML report with plots of a search run (progress, best so far, importances)",
               "Plot a search run: every trial's metric over time with ASHA's stops, the best so far against compute, "
               "parameter importances (fANOVA) and the metric against each parameter."),
    "dashboard": (dashboard_args, cmd_dashboard, "serve optuna-dashboard for a search's Optuna study, on 127.0.0.1",
                  "Serve optuna-dashboard (trials, intermediate values, parameter plots) for the Optuna study of RUN (a local "
                  "directory or s3:// / gs:// URI), while the search runs or after. It has no authentication: it listens "
                  "on 127.0.0.1 only; from another machine, forward the port over SSH."),
    "status": (status_args, cmd_status, "leaderboard of a running or finished search, read from its storage path",
               "Print the leaderboard of RUN (a local directory or s3:// / gs:// URI), from any machine that can read "
               "it; with --watch, refresh until no trial is pending or running."),
}
