"""Reading what a search wrote, as a user would, for the tests."""

from pathlib import Path


def read_leaderboard(path: Path):
    """leaderboard.csv with its trial ids kept as text. Ray's trial ids are 8 hex digits: read as
    numbers, "1e616315" becomes inf and "12345678" an integer, whenever every id in the file looks
    like a number (a one-trial leaderboard, for one), and no id matches the summary's any more."""
    import pandas as pd

    return pd.read_csv(path, dtype={"trial_id": str})
