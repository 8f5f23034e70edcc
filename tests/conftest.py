from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(Path(__file__).parent))

from tiny import make_tiny_backbone  # noqa: E402


def shared(name: str) -> Path:
    """A real data file from ../shared/data; a missing file fails the test (never skips it)."""
    path = SHARED_DATA / name
    assert path.exists(), f"real test data missing: {path} (tests expect ../shared/data beside the repo)"
    return path


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory) -> str:
    return str(make_tiny_backbone(tmp_path_factory.mktemp("backbone") / "tiny-bert"))


@pytest.fixture(scope="session")
def ruddit_pairs() -> Path:
    return shared("ruddit_pairs.csv")
