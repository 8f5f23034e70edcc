"""Typed configuration of the data section (`data:` in the YAML)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class DataConfig:
    pairs: str = "demo"
    """CSV of pair votes (a path, relative to the config file), or `demo` for the bundled demo data."""
    less_column: str = "less_toxic"
    """Column holding the text the annotator ranked lower."""
    more_column: str = "more_toxic"
    """Column holding the text the annotator ranked higher."""
    folds: int = 5
    """Number of leak-free folds the texts are split into."""
    fold: int = 0
    """Which fold validates (0-based); the others train."""
    split: Literal["auto", "components", "texts"] = "auto"
    """How texts go to folds: by connected component, by text (dropping crossing votes), or auto."""
    split_seed: int = 42
    """Seed of the fold assignment (and of max_votes' subsample)."""
    max_votes: int | None = None
    """Use a seeded random subset of this many votes (fast iteration); null = all."""
    max_train_votes: int | None = None
    """Train on a seeded random subset of this many of the fold's training votes (validation stays
    whole); null = all."""
    max_length: int = 128
    """Tokens per text, special tokens included; longer texts are truncated."""
    lowercase: bool = False
    """Lower-case texts before tokenising."""

    def problems(self) -> list[tuple[str, str]]:
        out = []
        if self.folds < 2:
            out.append(("folds", f"must be at least 2, got {self.folds}"))
        elif not 0 <= self.fold < self.folds:
            out.append(("fold", f"must be in 0..{self.folds - 1} for {self.folds} folds, got {self.fold}"))
        if self.max_length < 8:
            out.append(("max_length", f"must be at least 8, got {self.max_length}"))
        for key in ("max_votes", "max_train_votes"):
            value = getattr(self, key)
            if value is not None and value < 2:
                out.append((key, f"must be at least 2 (or null), got {value}"))
        return out
