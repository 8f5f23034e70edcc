"""Time to a good ranker: pairtune's default search against what its users would run instead.

    python benchmarks/vs_peers.py [--budget-min 20] [--systems notebook,ray_guide,pairtune] [--out DIR]
                                  [--config benchmarks/ruddit_minilm_30min.yaml] [--set key=value ...]

Three systems, one after another on this machine, each with the same wall-clock budget, the same data
and the same search space, all read from one pairtune config (default: the 30-minute Ruddit config:
fold 0 of ../shared/data/ruddit_pairs.csv, a seeded 3,000 of its training votes, the whole leak-free
validation fold, MiniLM, max_length 128, 2 epochs, a validation every ~half epoch; lr, margin, batch
size, warmup and dropout searched; the config's first point tried first by all three):

- notebook:  the Jigsaw notebook's training loop (a Dataset that tokenises both texts of a pair on each
             access, padded to max_length; two forward passes through the encoder's pooler output;
             MarginRankingLoss; validation encodes both texts of every vote) inside a plain Optuna study
             (TPE, MedianPruner on each validation), one trial at a time on all cores.
- ray_guide: the recipe of Ray Tune's Lightning guide: a LightningModule over the same per-pair dataset,
             TuneReportCheckpointCallback at each validation, Ray's stock OptunaSearch and
             ASHAScheduler (grace 1 validation, reduction factor 2, as the guide), two concurrent
             trials of one CPU each.
- pairtune:  `pairtune search CONFIG` as shipped, with search.time_budget_s set to the budget and
             model.pooling pooler: the peers' model (the notebook's pooler output), so that the three
             systems train one model.

Each system runs in its own process, its clock starting when that process is launched (imports, Ray's
start and data preparation count). The peers train with the same optimizer (AdamW, the config's
weight decay) and the same schedule rule (model/ranker.py's lr_lambda) as pairtune, so that the searched
values mean the same thing. Agreement: for all three, the share of validation votes whose more-toxic
text scores strictly higher (model/intervals.py's vote_hits rule) on the same votes; the peers call
model/intervals.py's agreement, pairtune's trials count with the same rule.

Writes OUT/curves.csv (system, elapsed_s, trial, agreement, best_so_far), OUT/curves.png (best so far
against wall time), and prints for each peer the time it took to reach its own final best, the time
pairtune took to reach that value, and the ratio; then the same for every value at which the peer's best
so far rose (one validation is noisy, so the final best alone can hinge on a few votes).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

DEFAULT_CONFIG = ROOT / "benchmarks" / "ruddit_minilm_30min.yaml"
SYSTEMS = ("notebook", "ray_guide", "pairtune")
# The model all three train: the notebook's, which scores the encoder's pooler output (pairtune's trials
# read the same pretrained pooler with model.pooling pooler), so that the systems differ, not the models.
PEER_MODEL = "model.pooling=pooler"
DECIMALS = 6  # of an agreement in the event files; time_to_reach compares at this precision
# The keys the peers can vary (each means the same there as in pairtune); a config searching others is refused.
PEER_KEYS = ("train.lr", "train.margin", "train.batch_size", "train.warmup_ratio", "model.dropout")
CSV_FIELDS = ("system", "elapsed_s", "trial", "agreement")


# ---------------------------------------------------------------- the peers' shared pieces
@dataclass
class PeerData:
    """The search's fold as text: training and validation votes as (less, more) strings."""

    train_less: list[str]
    train_more: list[str]
    val_less: list[str]
    val_more: list[str]


def load_config(path, overrides):
    from search.config.load import load_config as load

    return load(str(path), list(overrides))


def peer_data(cfg) -> PeerData:
    """The same votes pairtune's trials use: the config's leak-free fold, capped as data.max_train_votes says."""
    from search.tune.prepare import load_split

    votes, split = load_split(cfg)
    text = lambda idx: [votes.texts[i] for i in idx]  # noqa: E731
    t, v = split.train_votes, split.val_votes
    return PeerData(text(votes.less[t]), text(votes.more[t]), text(votes.less[v]), text(votes.more[v]))


def vote_agreement(more_scores, less_scores) -> float:
    """Agreement of per-vote scores, by the project's one rule (model/intervals.py): vote i is
    reproduced when its more-toxic text scores strictly higher than its less-toxic one."""
    import numpy as np

    from model.intervals import agreement

    more, less = np.asarray(more_scores, dtype=np.float64), np.asarray(less_scores, dtype=np.float64)
    n = len(more)
    return agreement(np.concatenate([less, more]), np.arange(n), np.arange(n) + n)


def peer_space(cfg) -> dict:
    """search.space as Optuna distributions (the same Dimension.to_optuna pairtune's searcher uses)."""
    from search.config.space import searched_dimensions

    dims = searched_dimensions(cfg)
    other = [d.key for d in dims if d.key not in PEER_KEYS]
    if other:
        raise SystemExit(f"search.space: keys the peers cannot vary: {other} (they vary {list(PEER_KEYS)})")
    if cfg.train.schedule == "onecycle":  # not an lr_lambda schedule: the peers would silently run cosine
        raise SystemExit("train.schedule: the peers follow model/ranker.py's lr_lambda (cosine, linear, constant), "
                         "not onecycle")
    return {d.key: d.to_optuna() for d in dims}


def suggest(trial, key: str, dist):
    """The public Optuna call for one distribution of peer_space."""
    import optuna.distributions as d

    if isinstance(dist, d.FloatDistribution):
        return trial.suggest_float(key, dist.low, dist.high, log=dist.log)
    if isinstance(dist, d.IntDistribution):
        return trial.suggest_int(key, dist.low, dist.high, log=dist.log)
    return trial.suggest_categorical(key, dist.choices)


def hyper(cfg, params: dict) -> dict:
    """A trial's values for every key the peers use: the sampled ones, the config's for the rest."""
    out = {}
    for key in PEER_KEYS:
        section, name = key.split(".")
        out[key] = params.get(key, getattr(getattr(cfg, section), name))
    return out


def make_peer_model(cfg, hp: dict, total_steps: int):
    """The notebook's LightningModule (benchmarks/throughput.py) with a trial's dropout, margin, learning
    rate, warmup and the config's schedule, and agreement computed at the end of each validation."""
    import torch
    from throughput import NotebookModel
    from torch import nn

    from model.ranker import lr_lambda

    class PeerModel(NotebookModel):
        def __init__(self):
            super().__init__(cfg.model.backbone)
            self.drop = nn.Dropout(p=float(hp["model.dropout"]))
            self.criterion = nn.MarginRankingLoss(margin=float(hp["train.margin"]))

        def configure_optimizers(self):
            t = cfg.train
            opt = torch.optim.AdamW(self.parameters(), lr=float(hp["train.lr"]), weight_decay=t.weight_decay)
            warmup = int(round(float(hp["train.warmup_ratio"]) * total_steps))
            floor = min(1.0, t.min_lr / float(hp["train.lr"]))
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(t.schedule, total_steps, warmup, floor))
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

        def on_validation_epoch_end(self):
            more = torch.cat([m for m, _ in self.val_scores]).float().cpu().numpy()
            less = torch.cat([x for _, x in self.val_scores]).float().cpu().numpy()
            self.val_scores.clear()
            self.log("agreement", vote_agreement(more, less))

    return PeerModel()


def peer_loaders(cfg, data: PeerData, batch_size: int):
    """The notebook's per-pair datasets: training shuffled, validation in order at the notebook's batch 64."""
    from throughput import VAL_BATCH_BASELINE, NotebookDataset
    from torch.utils.data import DataLoader

    from model.backbone import load_tokenizer

    tok = load_tokenizer(cfg.model.backbone)
    n = cfg.data.max_length
    train = DataLoader(NotebookDataset(data.train_less, data.train_more, tok, n), batch_size=batch_size, shuffle=True,
                       num_workers=0)
    val = DataLoader(NotebookDataset(data.val_less, data.val_more, tok, n), batch_size=VAL_BATCH_BASELINE,
                     shuffle=False, num_workers=0)
    return train, val


def peer_trainer(cfg, n_train: int, batch_size: int, callbacks: list):
    """Lightning's Trainer for a peer, validating at pairtune's cadence by pairtune's own rule
    (model.epochs.val_check_interval) over the peer's batches (its DataLoader keeps the last, short
    batch; the peers step at every batch)."""
    import dataclasses

    import pytorch_lightning as pl

    from model.epochs import val_check_interval

    batches = -(-n_train // batch_size)
    every = val_check_interval(batches, dataclasses.replace(cfg.train, accumulate_grad_batches=1))
    return pl.Trainer(accelerator="cpu", devices=1, precision="32-true", max_epochs=cfg.train.epochs,
                      val_check_interval=every, num_sanity_val_steps=0,
                      logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                      callbacks=callbacks)


class EventLog:
    """Appends (system, elapsed_s, trial, agreement) rows to a CSV as they happen, clocked from `start`
    (an epoch time); nothing at or past the deadline is written."""

    def __init__(self, path: Path, system: str, start: float, budget_s: float):
        self.path, self.system, self.start, self.deadline = path, system, start, start + budget_s

    def over(self) -> bool:
        return time.time() >= self.deadline

    def add(self, trial, value: float) -> None:
        now = time.time()
        if now >= self.deadline:
            return
        with open(self.path, "a", newline="") as f:
            csv.writer(f).writerow([self.system, f"{now - self.start:.2f}", trial, f"{value:.{DECIMALS}f}"])


# ---------------------------------------------------------------- (a) the notebook in a plain Optuna study
def run_notebook(cfg, log: EventLog, seed: int) -> None:
    import optuna
    import pytorch_lightning as pl
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    data = peer_data(cfg)
    space = peer_space(cfg)

    class BudgetSpent(Exception):
        """Raised out of Lightning's loop at the deadline (should_stop would still run a last validation)."""

    class Report(pl.Callback):
        def __init__(self, trial):
            self.trial, self.step, self.pruned, self.best = trial, 0, False, float("nan")

        def on_train_batch_end(self, trainer, module, *args):
            if log.over():
                raise BudgetSpent()

        def on_validation_start(self, trainer, module):
            if log.over():
                raise BudgetSpent()

        def on_validation_end(self, trainer, module):
            value = float(trainer.callback_metrics["agreement"])
            log.add(self.trial.number, value)
            self.best = value if not self.best >= value else self.best
            self.step += 1
            self.trial.report(value, self.step)
            if self.trial.should_prune():
                self.pruned, trainer.should_stop = True, True

    def objective(trial):
        params = {key: suggest(trial, key, dist) for key, dist in space.items()}
        hp = hyper(cfg, params)
        batch = int(hp["train.batch_size"])
        pl.seed_everything(cfg.train.seed, verbose=False)
        train, val = peer_loaders(cfg, data, batch)
        report = Report(trial)
        module = make_peer_model(cfg, hp, total_steps=len(train) * cfg.train.epochs)
        try:
            peer_trainer(cfg, len(data.train_less), batch, [report]).fit(module, train, val)
        except BudgetSpent:
            if report.best != report.best:  # no validation before the deadline: nothing to tell the study
                raise optuna.TrialPruned() from None
        if report.pruned:
            raise optuna.TrialPruned()
        return report.best

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed),
                                pruner=optuna.pruners.MedianPruner())
    for point in cfg.search.points_to_evaluate:
        study.enqueue_trial(point)
    study.optimize(objective, timeout=max(1.0, log.deadline - time.time()), catch=(Exception,))


# ---------------------------------------------------------------- (b) Ray Tune's Lightning guide
def run_ray_guide(cfg, log: EventLog, seed: int, out: Path) -> None:
    import ray
    from ray import tune
    from ray.tune.integration.pytorch_lightning import TuneReportCheckpointCallback
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    data = peer_data(cfg)
    space = peer_space(cfg)

    def train_fn(config, data=None):
        import pytorch_lightning as pl

        hp = hyper(cfg, config)
        batch = int(hp["train.batch_size"])
        pl.seed_everything(cfg.train.seed, verbose=False)
        train, val = peer_loaders(cfg, data, batch)
        module = make_peer_model(cfg, hp, total_steps=len(train) * cfg.train.epochs)
        report = TuneReportCheckpointCallback({"agreement": "agreement"}, on="validation_end")
        peer_trainer(cfg, len(data.train_less), batch, [report]).fit(module, train, val)

    class Record(tune.Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            log.add(trial.trial_id, float(result["agreement"]))

    # As Tuner would start it (dashboard included), but always a new local instance: never a cluster
    # that `ray start` left running on this machine.
    ray.init(address="local", log_to_driver=False)
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(train_fn, data=data), {"cpu": 1}),
        tune_config=tune.TuneConfig(
            metric="agreement", mode="max", num_samples=1000, max_concurrent_trials=2,
            time_budget_s=max(1.0, log.deadline - time.time()),
            # metric and mode on the searcher too: Ray wraps it in a ConcurrencyLimiter (max_concurrent_trials),
            # which does not pass TuneConfig's on (Ray 2.60: "the `metric` (None) ... have not been set").
            search_alg=OptunaSearch(space=space, metric="agreement", mode="max", seed=seed,
                                    points_to_evaluate=list(cfg.search.points_to_evaluate)),
            # The guide's ASHA counts reports (training_iteration); trials end themselves after train.epochs,
            # so max_t only has to be past any trial's number of validations.
            scheduler=ASHAScheduler(max_t=1000, grace_period=1, reduction_factor=2)),
        run_config=tune.RunConfig(storage_path=str(out / "ray_guide"), name="ray_guide", callbacks=[Record()],
                                  verbose=0),
    )
    tuner.fit()
    ray.shutdown()


# ---------------------------------------------------------------- (c) pairtune
def run_pairtune(config: Path, overrides: list[str], out: Path, budget_s: float) -> float:
    """`pairtune search` as a user runs it; the time of its launch (its clock's start)."""
    sets = [*overrides, PEER_MODEL, f"search.time_budget_s={budget_s}", f"search.storage_path={out / 'pairtune'}",
            "search.name=vs_peers"]
    start = time.time()
    cmd = [sys.executable, "-m", "search.cli", "search", str(config)] + [a for s in sets for a in ("--set", s)]
    with open(out / "pairtune.log", "w") as f:
        subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, check=False)
    return start


def pairtune_events(run: Path, start: float, budget_s: float) -> list[dict]:
    """Every validation result of a pairtune run, clocked from `start`. Ray stamps results in whole
    seconds, rounded down: each is taken as the next whole second, so pairtune is never credited early."""
    from search.runs.results import read_run

    records = read_run(run, "val/agreement", "max")
    rows = []
    for trial_id, frame in records.frames.items():
        for _, r in frame.iterrows():
            elapsed = float(r["timestamp"]) + 1 - start
            if elapsed < budget_s and r.get("val/agreement") == r.get("val/agreement"):
                rows.append({"system": "pairtune", "elapsed_s": round(elapsed, 2), "trial": trial_id,
                             "agreement": float(r["val/agreement"])})
    return rows


# ---------------------------------------------------------------- the comparison
def read_events(path: Path, header: bool = False) -> list[dict]:
    """Events from a worker's CSV (no header), or from curves.csv (header; its best_so_far column ignored)."""
    if not path.exists():
        return []
    with open(path, newline="") as f:
        rows = list(csv.reader(f))[1 if header else 0:]
    return [{"system": r[0], "elapsed_s": float(r[1]), "trial": r[2], "agreement": float(r[3])} for r in rows]


def best_so_far(events: list[dict]) -> list[tuple[float, float]]:
    """(elapsed_s, best agreement so far) at each event that raised it."""
    out, best = [], float("-inf")
    for e in sorted(events, key=lambda e: e["elapsed_s"]):
        if e["agreement"] > best:
            best = e["agreement"]
            out.append((e["elapsed_s"], best))
    return out


def time_to_reach(curve: list[tuple[float, float]], value: float) -> float | None:
    """First elapsed time at which the best so far is at least `value`; None when never. Compared at the
    DECIMALS the event files keep (a peer's logged 0.703575 is pairtune's 2421/3441 = 0.7035745...; two
    agreements on fewer than 500,000 votes that differ do so by more than that)."""
    return next((t for t, best in curve if round(best, DECIMALS) >= round(value, DECIMALS)), None)


def step_ratios(events: dict[str, list[dict]]) -> list[dict]:
    """At each point where a peer's best so far rose: when the peer got there, when pairtune reached the
    same value, the ratio. One validation's agreement is noisy (benchmark folds: about +-0.017 at 95% on
    3,441 votes), so the final best alone can hinge on a few votes; the whole climb says more."""
    ours = best_so_far(events.get("pairtune", []))
    rows = []
    for system, got in events.items():
        if system == "pairtune":
            continue
        for peer_s, value in best_so_far(got):
            ours_s = time_to_reach(ours, value)
            rows.append({"peer": system, "value": value, "peer_s": peer_s, "pairtune_s": ours_s,
                         "ratio": peer_s / ours_s if ours_s else None})
    return rows


def compare(events: dict[str, list[dict]]) -> list[dict]:
    """Per peer: its final best (its last rise), when it got there, when pairtune got there, the ratio."""
    steps = step_ratios(events)
    rows = []
    for system in events:
        if system == "pairtune":
            continue
        mine = [r for r in steps if r["peer"] == system]
        last = mine[-1] if mine else {"value": None, "peer_s": None, "pairtune_s": None, "ratio": None}
        rows.append({"peer": system, "peer_best": last["value"], "peer_s": last["peer_s"],
                     "pairtune_s": last["pairtune_s"], "ratio": last["ratio"]})
    return rows


def summary_table(events: dict[str, list[dict]], rows: list[dict], budget_s: float) -> str:
    lines = ["| system | trials reporting | validations | first result at | best agreement | reached at |",
             "| --- | --- | --- | --- | --- | --- |"]
    for system, got in events.items():
        curve = best_so_far(got)
        best = f"{curve[-1][1]:.4f}" if curve else "none"
        at = f"{curve[-1][0] / 60:.1f} min" if curve else "-"
        first = f"{curve[0][0] / 60:.1f} min" if curve else "-"
        lines.append(f"| {system} | {len({e['trial'] for e in got})} | {len(got)} | {first} | {best} | {at} |")
    lines += ["", "| peer | its final best | peer reached it at | pairtune reached it at | pairtune faster by |",
              "| --- | --- | --- | --- | --- |"]
    for r in rows:
        if r["peer_best"] is None:
            lines.append(f"| {r['peer']} | no result in {budget_s / 60:.0f} min | | | |")
            continue
        ours = f"{r['pairtune_s'] / 60:.1f} min" if r["pairtune_s"] is not None else f"not within {budget_s / 60:.0f} min"
        ratio = f"{r['ratio']:.1f}x" if r["ratio"] else "-"
        lines.append(f"| {r['peer']} | {r['peer_best']:.4f} | {r['peer_s'] / 60:.1f} min | {ours} | {ratio} |")
    lines += ["", "| peer | each rise of its best so far | peer reached it at | pairtune reached it at | ratio |",
              "| --- | --- | --- | --- | --- |"]
    for r in step_ratios(events):
        ours = f"{r['pairtune_s'] / 60:.1f} min" if r["pairtune_s"] is not None else f"not within {budget_s / 60:.0f} min"
        ratio = f"{r['ratio']:.1f}x" if r["ratio"] else "-"
        lines.append(f"| {r['peer']} | {r['value']:.4f} | {r['peer_s'] / 60:.1f} min | {ours} | {ratio} |")
    return "\n".join(lines)


def write_outputs(out: Path, events: dict[str, list[dict]], budget_s: float) -> None:
    with open(out / "curves.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([*CSV_FIELDS, "best_so_far"])
        for system, got in events.items():
            best = float("-inf")
            for e in sorted(got, key=lambda e: e["elapsed_s"]):
                best = max(best, e["agreement"])
                w.writerow([system, e["elapsed_s"], e["trial"], f"{e['agreement']:.{DECIMALS}f}", f"{best:.{DECIMALS}f}"])
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for system, got in events.items():
        curve = best_so_far(got)
        if curve:
            xs = [t / 60 for t, _ in curve] + [budget_s / 60]
            ys = [b for _, b in curve] + [curve[-1][1]]
            ax.step(xs, ys, where="post", label=system, marker="o", markersize=3)
    ax.set_xlabel("wall time, minutes (each system from its own launch)")
    ax.set_ylabel("best validation agreement so far")
    ax.set_xlim(0, budget_s / 60)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=120)
    plt.close(fig)


def run_system(system: str, args, out: Path, budget_s: float) -> list[dict]:
    """One system in its own process; its validation events."""
    path = out / f"{system}.events.csv"
    path.unlink(missing_ok=True)
    shutil.rmtree(out / system, ignore_errors=True)  # a fresh run each time, never a resumed one
    if system == "pairtune":
        start = run_pairtune(args.config, args.overrides, out, budget_s)
        return pairtune_events(out / "pairtune" / "vs_peers", start, budget_s)
    cmd = [sys.executable, __file__, "--worker", system, "--events", str(path), "--start", str(time.time()),
           "--budget-min", str(args.budget_min), "--config", str(args.config), "--seed", str(args.seed),
           "--out", str(out)] + [a for s in args.overrides for a in ("--set", s)]
    with open(out / f"{system}.log", "w") as f:
        subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, check=False)
    return read_events(path)


def worker(args) -> None:
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    cfg = load_config(args.config, args.overrides)
    log = EventLog(Path(args.events), args.worker, float(args.start), args.budget_min * 60)
    if args.worker == "notebook":
        run_notebook(cfg, log, args.seed)
    else:
        run_ray_guide(cfg, log, args.seed, Path(args.out))


def report(out: Path, events: dict[str, list[dict]], args) -> None:
    budget_s = args.budget_min * 60
    write_outputs(out, events, budget_s)
    rows = compare(events)
    (out / "comparison.json").write_text(json.dumps(rows, indent=2))
    print(summary_table(events, rows, budget_s))
    print(f"\n{out}/curves.csv, curves.png, comparison.json; {time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs, "
          f"{args.budget_min:g} min per system, config {args.config.name} {' '.join(args.overrides)}")



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget-min", type=float, default=20.0, help="wall-clock minutes per system")
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="config override, for all three")
    ap.add_argument("--seed", type=int, default=0, help="the peers' sampler seed")
    ap.add_argument("--out", type=Path, default=None, help="where to write (default: a new temporary directory)")
    ap.add_argument("--replot", action="store_true", help="only redo the table and plot from OUT/curves.csv")
    ap.add_argument("--worker", choices=SYSTEMS[:2], help=argparse.SUPPRESS)
    ap.add_argument("--events", help=argparse.SUPPRESS)
    ap.add_argument("--start", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    if args.replot:
        if args.out is None:
            raise SystemExit("--replot needs --out DIR (a directory an earlier run wrote)")
        got = read_events(args.out / "curves.csv", header=True)
        report(args.out, {s: [e for e in got if e["system"] == s] for s in dict.fromkeys(e["system"] for e in got)},
               args)
        return
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown or "pairtune" not in systems:
        raise SystemExit(f"--systems: {unknown or 'pairtune is missing'} (choose from {', '.join(SYSTEMS)}; pairtune is needed)")
    cfg = load_config(args.config, args.overrides)  # a bad config or space fails here, before anything runs
    peer_space(cfg)
    out = args.out or Path(tempfile.mkdtemp(prefix="vs_peers_"))
    out.mkdir(parents=True, exist_ok=True)
    budget_s = args.budget_min * 60
    events = {}
    for system in systems:
        print(f"{time.strftime('%H:%M:%S')} {system}: {args.budget_min:g} minutes", flush=True)
        events[system] = run_system(system, args, out, budget_s)
        print(f"{time.strftime('%H:%M:%S')} {system}: {len(events[system])} validations", flush=True)
    report(out, events, args)


if __name__ == "__main__":
    main()
