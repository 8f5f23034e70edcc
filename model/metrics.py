"""Metric names and modes, shared by logging, Tune reporting, ASHA, Optuna, export and the tests.

No torch here: validating a config and reading a finished run import this module, not the model.
"""

AGREEMENT = "val/agreement"
VAL_LOSS = "val/loss"
TRAIN_LOSS = "train/loss"
# Logged as well when the pairs were derived from scored texts (data.format scores or labels).
PEARSON = "val/pearson"
SPEARMAN = "val/spearman"
# Every metric a search may optimise, and whether higher is better.
METRIC_MODES = {AGREEMENT: "max", PEARSON: "max", SPEARMAN: "max", VAL_LOSS: "min"}


def better(mode: str):
    """max or min: which of two values of a metric with this mode is the better one."""
    return max if mode == "max" else min


# Metrics that need the true scores of the validation texts (data.format scores or labels).
SCORED_METRICS = (PEARSON, SPEARMAN)
