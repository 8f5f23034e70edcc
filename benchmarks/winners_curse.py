"""The winner's curse, measured: how much of a search's best value survives retraining?

    python benchmarks/winners_curse.py RUN_OR_CONFIG [--seeds 0,1] [--steps 10] [--also N] [--set KEY=VALUE ...]

RUN is a finished search (a local run directory, e.g. the quickstart's or the 30-minute benchmark's);
given a config file instead, the search runs first (`pairtune search CONFIG --set ...`, as users run it).
Its best trial and the members of its ensemble (`pairtune ensemble`'s greedy forward selection over the
scores the trials kept) are retrained one after another in this process, each with its own sampled
config (all its epochs: a trial ASHA stopped is retrained to the end) on the same fold, once per seed
in `--seeds`. The seed the search used (train.seed) retrains a trial exactly as the search trained it
(same batches, same dropout masks): its row checks that the search's value is reproducible; any other
seed is a new draw of the same config, and the gap between the winner's search value and its mean over
new draws is the winner's curse: how much of its lead was luck. The ensemble of the retrained members
(rank average of their best validation's scores, as `pairtune ensemble` builds it) is compared with the
search's ensemble the same way. `--also N` retrains the next N trials of the leaderboard too: does the
winner still lead them on new seeds? Everything is judged by the search's own validation votes
(RUN/pairtune_validation.npz) and agreement function.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model.intervals import agreement  # noqa: E402
from model.train import fit, set_threads  # noqa: E402
from search.config.parse import with_params  # noqa: E402
from search.recipes.ensemble import candidates, choose_greedy  # noqa: E402
from search.recipes.predict import rank_average  # noqa: E402
from search.runs.layout import load_run_config  # noqa: E402
from search.tune.prepare import prepare_data  # noqa: E402


def retrain(cfg, prepared, seed: int) -> tuple[float, object, float]:
    """(best value of search.metric, that validation's scores, seconds) of cfg trained with `seed`."""
    import dataclasses

    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=seed))
    set_threads(cfg.search.cpus_per_trial)  # the trial's threads: the same seed then trains the same numbers
    start = time.perf_counter()
    _, tracker = fit(cfg.model, cfg.train, prepared.fold_inputs(cfg.model.backbone, cfg.data.lowercase),
                     cfg.data.max_length, monitor=cfg.search.metric)
    best = [r for r in tracker.history if r.is_best][-1]
    return best.value, best.scores, time.perf_counter() - start


def search_first(config: Path, sets: list[str]) -> Path:
    """Run `pairtune search CONFIG --set ...` in a subprocess; its run directory."""
    import subprocess

    from search.config.load import load_config
    from search.runs.layout import run_dir

    cfg = load_config(config, sets)
    args = [sys.executable, "-m", "search.cli", "search", str(config)] + [a for s in sets for a in ("--set", s)]
    subprocess.run(args, check=True, cwd=ROOT)
    directory = Path(run_dir(cfg))
    # A rerun with the same name gets its own directory (search/tune/tuner.py fresh_run): the newest one.
    return max(directory.parent.glob(directory.name + "*"), key=lambda p: p.stat().st_mtime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="a finished search's run directory, or a config file to search first")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="overrides for the search (with a config)")
    ap.add_argument("--seeds", default=None, help="comma-separated train.seed values (default: the search's and one other)")
    ap.add_argument("--steps", type=int, default=10, help="greedy selection steps, as `pairtune ensemble --steps`")
    ap.add_argument("--also", type=int, default=0, help="retrain the next N trials of the leaderboard too (does the order hold?)")
    args = ap.parse_args()

    import json

    run = Path(args.run).expanduser().resolve()
    if run.is_file():
        run = search_first(run, args.set)
    base = load_run_config(run)
    found, (less, more, _) = candidates(run)  # best first
    members = [found[i] for i in choose_greedy(found, less, more, args.steps)]
    unique = list(dict.fromkeys(m["trial_id"] for m in [found[0], *members, *found[1:1 + args.also]]))
    searched = {f["trial_id"]: f for f in found}
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [base.train.seed, base.train.seed + 1]
    prepared = prepare_data(base)
    print(f"run {run}: {len(found)} trials kept scores; best {found[0]['trial_id']} ({found[0]['value']:.4f}); "
          f"ensemble of {len(members)} ({', '.join(m['trial_id'] for m in members)}), {len(less)} validation votes")
    print(f"retraining {len(unique)} trial(s) x seeds {seeds} (the search's seed: {base.train.seed})\n")

    rows, scores = [], {}
    for trial_id in unique:
        params = json.loads((run / trial_id / "params.json").read_text())
        cfg = with_params(base, params)
        for seed in seeds:
            value, s, seconds = retrain(cfg, prepared, seed)
            scores[(trial_id, seed)] = s
            rows.append((trial_id, seed, searched[trial_id]["value"], value, seconds))
            print(f"  {trial_id} seed {seed}: search {searched[trial_id]['value']:.4f}, retrained {value:.4f} "
                  f"({value - searched[trial_id]['value']:+.4f}), {seconds:.0f} s", flush=True)

    print("\n| trial | role | search value | seed | retrained | difference |")
    print("| --- | --- | --- | --- | --- | --- |")
    member_ids = {m["trial_id"] for m in members}
    places = {f["trial_id"]: i + 1 for i, f in enumerate(found)}
    for trial_id, seed, search_value, value, _ in rows:
        tags = [tag for tag, on in (("best", places[trial_id] == 1), ("member", trial_id in member_ids)) if on]
        role = " + ".join(tags) or f"#{places[trial_id]} on the leaderboard"
        same = " (the search's)" if seed == base.train.seed else ""
        print(f"| {trial_id} | {role} | {search_value:.4f} | {seed}{same} | {value:.4f} | {value - search_value:+.4f} |")

    search_ensemble = agreement(rank_average([m["scores"] for m in members]), less, more)
    print("\n| ensemble | seed | search | retrained | difference |")
    print("| --- | --- | --- | --- | --- |")
    for seed in seeds:
        again = agreement(rank_average([scores[(m["trial_id"], seed)] for m in members]), less, more)
        print(f"| {len(members)} members | {seed} | {search_ensemble:.4f} | {again:.4f} | {again - search_ensemble:+.4f} |")

    best = found[0]["trial_id"]
    new = [v for t, s, _, v, _ in rows if t == best and s != base.train.seed]
    if new:
        print(f"\nwinner's curse: the best trial's search value {found[0]['value']:.4f}, its mean over {len(new)} new "
              f"seed(s) {statistics.mean(new):.4f} ({statistics.mean(new) - found[0]['value']:+.4f})")


if __name__ == "__main__":
    main()
