"""Models from a config, a search's best.yaml, or a search's best trials.

    train.py     `pairtune train`: a final model on one fold, every fold (--folds) or all votes (--full)
    predict.py   `pairtune predict`: scores from a model or a fold ensemble
    lr_find.py   `pairtune lr-find`: a learning-rate range test that writes a searchable range
    ensemble.py  `pairtune ensemble`: a rank-average ensemble of a search's trials, chosen from their kept scores

May import: tune/ (its preflight and data preparation), runs/, config/, model/, data/; never cli/.
"""
