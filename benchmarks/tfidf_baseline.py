"""TF-IDF + ridge floor on the same leak-free fold a search uses (same as `pairtune baseline`).

The logic lives in search/tune/baseline.py. Usage:

    python benchmarks/tfidf_baseline.py CONFIG [--set key=value ...]
"""

from __future__ import annotations

import argparse

from search.config.load import load_config
from search.tune.baseline import baseline_for_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    print(baseline_for_config(load_config(args.config, args.overrides)))


if __name__ == "__main__":
    main()
