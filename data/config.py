"""Typed configuration of the data section (`data:` in the YAML)."""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Literal


@dataclass
class DataConfig:
    pairs: str = "demo"
    """The data CSV (a path, relative to the config file): pair votes, scored texts or labelled texts
    as `format` says; `demo` is the bundled demo votes."""
    format: Literal["pairs", "scores", "labels"] = "pairs"
    """pairs: annotator votes (less_column, more_column). scores: a text and a number per row
    (text_column, score_column). labels: a text and 0/1 (or numeric) label columns per row, scored as
    the weighted sum given by label_weights. For scores and labels, training and validation pairs are
    derived from the scores inside each fold."""
    text_column: str = "text"
    """scores/labels: column holding the text (ignored when `template` is set)."""
    score_column: str = "score"
    """scores: column holding the score (higher = ranks above)."""
    label_weights: dict = field(default_factory=dict)
    """labels: {label column: weight}; a row's score is the sum of weight * label, e.g.
    {toxic: 1, severe_toxic: 2, obscene: 1, threat: 1.5, insult: 1, identity_hate: 1.5}."""
    template: str | None = None
    """scores/labels: build the model's text from several columns, e.g. "{context} [SEP] {anchor} [SEP] {target}"."""
    group_column: str | None = None
    """scores/labels: keep all rows of a group (e.g. a patent's anchor) in one fold."""
    pairs_per_text: int = 5
    """scores/labels: partners drawn per text when deriving pairs (each unordered pair kept once)."""
    min_score_gap: float = 0.0
    """scores/labels: derive a pair only when the two scores differ by more than this (equal scores never pair)."""
    pair_seed: int = 0
    """scores/labels: seed of the pair derivation."""
    max_texts: int | None = None
    """scores/labels: use a seeded random subset of this many texts (fast iteration); null = all."""
    less_column: str = "less_toxic"
    """Column holding the text the annotator ranked lower."""
    more_column: str = "more_toxic"
    """Column holding the text the annotator ranked higher."""
    folds: int = 5
    """Number of leak-free folds the texts are split into."""
    fold: int = 0
    """Which fold validates (0-based); the others train."""
    split: Literal["auto", "components", "texts"] = "auto"
    """How pair votes' texts go to folds: by connected component, by text (dropping crossing votes), or
    auto. (Scored and labelled texts are split by text, or by group_column.)"""
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
        for key in ("max_votes", "max_train_votes", "max_texts"):
            value = getattr(self, key)
            if value is not None and value < 2:
                out.append((key, f"must be at least 2 (or null), got {value}"))
        if self.pairs_per_text < 1:
            out.append(("pairs_per_text", f"must be at least 1, got {self.pairs_per_text}"))
        if self.min_score_gap < 0:
            out.append(("min_score_gap", f"must not be negative, got {self.min_score_gap}"))
        if self.format == "labels":
            if not self.label_weights:
                out.append(("label_weights", "format labels needs {label column: weight, ...}"))
            for column, weight in self.label_weights.items():
                if isinstance(weight, bool) or not isinstance(weight, (int, float)):
                    out.append((f"label_weights.{column}", f"must be a number, got {weight!r}"))
        elif self.label_weights:
            out.append(("label_weights", f"only used with format labels, but format is {self.format}"))
        if self.format != "pairs" and self.max_votes is not None:
            out.append(("max_votes", f"subsamples pair votes; with format {self.format} use data.max_texts"))
        if self.format == "pairs":
            for key in ("template", "group_column", "max_texts"):
                if getattr(self, key) is not None:
                    out.append((key, "only used with format scores or labels (pair votes are split by text)"))
        if self.template is not None:
            try:
                template_fields(self.template)
            except ValueError as e:
                out.append(("template", str(e)))
        return out


def template_fields(template: str) -> list[str]:
    """Column names a `str.format` template refers to, e.g. "{context} [SEP] {anchor}" -> [context, anchor]."""
    try:
        fields = [name for _, name, spec, conv in string.Formatter().parse(template) if name is not None]
    except ValueError as e:
        raise ValueError(f"not a valid template ({e}); write columns as {{column}} and a literal brace as {{{{ or }}}}") from None
    if any(not f or f.isdigit() for f in fields):
        raise ValueError("every {} in the template must name a column, e.g. {anchor}")
    return fields
