"""The trainable ranker: encoder + scoring head, pairwise losses, agreement, training loop.

    losses.py      the pairwise losses (margin, logistic), the agreement metric, correlations
    metrics.py     metric names and modes, which metrics need scores (no torch)
    intervals.py   the agreement rule's hits (strictly greater) and bootstrap intervals (numpy only)
    ranker.py      the LightningModule: encoder, pooling, scoring head, optimizer and schedule
    train.py       fit(): one config on one fold, for `pairtune train` and every search trial
    epochs.py      steps per epoch and when fit validates, in epochs (no Lightning)
    backbone.py    encoders by hub id, local directory or alias (minilm)
    precision.py   fp16 / bf16 / fp32 for the hardware a trial got
    checkpoint.py  saving and loading a model directory (weights_only)
    scoring.py     scoring texts with a trained ranker (predict, the GPU check)
    progress.py    a progress bar or log lines while one model trains (train, lr-find)
    baseline.py    the TF-IDF + ridge floor every search should beat
    config.py      the `model:` and `train:` sections of the YAML

May import: data/; never search/.
"""
