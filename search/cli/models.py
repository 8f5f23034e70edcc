"""`pairtune train`, `predict`, `ensemble`, `baseline` and `lr-find`: models (search/recipes/)."""

from __future__ import annotations

from search.cli.common import add_config_args


def cmd_train(args) -> int:
    from search.config.load import load_config
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


def cmd_ensemble(args) -> int:
    from search.recipes.ensemble import build_ensemble

    r = build_ensemble(args.run, args.out, top=args.top, steps=args.steps)
    print(f"ensemble ({r['method']}): {len(r['members'])} member(s): {', '.join(r['members'])}")
    low, high = r["ci95"]
    print(f"validation agreement {r['validation_agreement']:.4f} on {r['validation_votes']} votes "
          f"(95% interval {low:.4f}-{high:.4f}); best single trial {r['best_single']['trial_id']}: "
          f"{r['best_single']['validation_agreement']:.4f}")
    print(f"note: {r['note']}")
    print(f"ensemble written to {r['out']}")
    print(f"score texts with: pairtune predict {r['out']} TEXTS.csv --out scores.csv")
    return 0


def cmd_baseline(args) -> int:
    from model.baseline import DESCRIPTION
    from search.config.load import load_config
    from search.tune.baseline import baseline_for_config

    cfg = load_config(args.config, args.overrides)
    r = baseline_for_config(cfg)
    print(f"{DESCRIPTION}, fold {r['fold']} of {cfg.data.folds}: fitted on {r['train_texts']} texts, "
          f"validated on {r['val_votes']} votes in {r['seconds']:.1f}s")
    print(f"val/agreement {r['agreement']:.4f}   (longer-is-more-toxic: {r['length_agreement']:.4f})")
    return 0


def cmd_lr_find(args) -> int:
    from search.config.load import load_config
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


def train_args(p) -> None:
    add_config_args(p)
    p.add_argument("--out", default=None, help="directory for the model (default: pairtune_train/<search.name>)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--folds", default=None, metavar="all|K,K,...",
                       help="train one model per fold into OUT/fold_K (a fold ensemble for `pairtune predict`)")
    which.add_argument("--full", action="store_true",
                       help="train on all votes with no validation, for train.epochs epochs; saves the last epoch")


def predict_args(p) -> None:
    p.add_argument("model", help="a model directory (from `pairtune train`) or a fold ensemble directory (--folds all)")
    p.add_argument("texts", help="CSV with an id column and a text column")
    p.add_argument("-o", "--out", required=True, help="output CSV (ID,score)")
    p.add_argument("--id-column", default="comment_id", help="id column of the CSV (default: comment_id)")
    p.add_argument("--text-column", default="text", help="text column of the CSV (default: text)")
    p.add_argument("--batch-size", type=int, default=128, help="texts per forward pass (default: 128)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def ensemble_args(p) -> None:
    p.add_argument("run", help="a search's run directory (local; its trials kept the scores of their best validation)")
    p.add_argument("-o", "--out", required=True, help="a new directory for the ensemble (fold_K/ models + ensemble.json)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--top", type=int, default=None, metavar="K", help="the K best trials, equally weighted")
    which.add_argument("--greedy", action="store_true",
                       help="greedy forward selection with replacement on the validation scores (the default)")
    p.add_argument("--steps", type=int, default=None,  # None: the recipe's GREEDY_STEPS (not imported for --help)
                   help="greedy selection steps; the best prefix is kept (default: 10)")


def lr_find_args(p) -> None:
    add_config_args(p)
    p.add_argument("--min-lr", type=float, default=1e-7, help="start of the range test (default: 1e-7)")
    p.add_argument("--max-lr", type=float, default=1e-1, help="end of the range test (default: 0.1)")
    p.add_argument("--steps", type=int, default=100, help="optimizer steps of the range test (default: 100)")
    p.add_argument("--write", default=None, metavar="OUT.yaml", help="write the config with the narrowed train.lr range")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


COMMANDS = {
    "train": (train_args, cmd_train, "train one configuration (e.g. an exported best.yaml) and report agreement",
              "Train the config's fixed values (search.space is ignored) on its fold, on every fold (--folds all) or "
              "on all votes (--full); each model directory is self-contained."),
    "predict": (predict_args, cmd_predict, "score a CSV of texts with a trained model or a fold ensemble",
                "Score the texts of a CSV (comment_id,text, as Jigsaw's comments_to_score.csv) with one model "
                "directory (raw scores) or a directory of fold_K/ models (rank average in [0, 1]); writes ID,score, "
                "one row per input row, in input order."),
    "ensemble": (ensemble_args, cmd_ensemble, "a rank-average ensemble of a search's best trials, for `pairtune predict`",
                 "Choose trials of RUN from the scores each kept of its best validation (nothing is re-scored): the "
                 "--top K, or greedy forward selection with replacement (default), and write their checkpoints as "
                 "a fold ensemble (fold_K/ self-contained models + ensemble.json) that `pairtune predict` takes. "
                 "Reports the ensemble's validation agreement with its 95% interval: optimistic, since the members "
                 "were chosen on that fold."),
    "baseline": (add_config_args, cmd_baseline, "TF-IDF + ridge agreement on the config's fold: the floor a search should beat",
                 "Fit TF-IDF (char 3-5) + ridge on the training fold (target: each text's share of won votes) and "
                 "report validation agreement, computed as the search computes it."),
    "lr-find": (lr_find_args, cmd_lr_find, "Lightning's learning-rate range test on the config's fold; suggests a search range",
                "Grow the learning rate exponentially over --steps optimizer steps on the config's training fold and "
                "suggest the rate where the loss falls fastest (Lightning's Tuner.lr_find). --write OUT.yaml copies "
                "the config file with search.space.train.lr set to loguniform [suggestion/10, suggestion*3] (--set "
                "overrides are not written)."),
}
