"""What the command groups share: the config and --address arguments, and printing user errors."""

from __future__ import annotations

import argparse
import sys


def add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML config (see configs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set train.lr=3e-4 (repeatable)")


def add_ray_address_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", default=None,
                   help="Ray cluster address (default: RAY_ADDRESS, set inside a Ray job; else start a local Ray instance)")


def positive_seconds(text: str) -> float:
    """A number of seconds above 0 (an argparse type)."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not seconds > 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text}")
    return seconds


def print_errors(e: Exception) -> None:
    for line in str(e).splitlines():
        print(f"pairtune: error: {line}", file=sys.stderr)
