"""Batches for training and validation over pre-tokenised unique texts.

Training batches are batches of votes; each batch runs one forward pass over the *unique* texts its
votes mention, padded only to the longest of them. Validation scores every unique validation text
once, longest first, and agreement is computed from those scores over all validation votes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from data.tokens import TokenizedTexts


@dataclass(frozen=True)
class FoldData:
    """Everything a trial needs to train and validate one fold; cheap to pickle.

    train_less/train_more/val_less/val_more: (V,) indices into `tokens`, one per vote.
    """

    tokens: TokenizedTexts
    train_less: np.ndarray
    train_more: np.ndarray
    val_less: np.ndarray
    val_more: np.ndarray
    scores: np.ndarray | None = None
    """(N,) true score of every text, when the pairs were derived from scored texts."""
    train_texts: np.ndarray | None = None
    """Indices into `tokens` of the training texts (pointwise training on scored texts)."""

    def val_texts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Unique validation texts, and each validation vote's (less, more) position among them."""
        texts, inverse = np.unique(np.concatenate([self.val_less, self.val_more]), return_inverse=True)
        n = len(self.val_less)
        return texts, inverse[:n], inverse[n:]


class _VoteCollate:
    """Votes -> one batch of their unique texts. With `texts_per_forward`, the unique texts are
    sorted by length and cut into chunks of that many, each padded only to its own longest text
    (a batch's less- and more-toxic texts differ a lot in length, so one padded block wastes much)."""

    def __init__(self, data: FoldData, max_length: int, texts_per_forward: int | None = None):
        self.data, self.max_length, self.texts_per_forward = data, max_length, texts_per_forward

    def __call__(self, votes: list[int]) -> dict:
        votes = np.asarray(votes)
        less, more = self.data.train_less[votes], self.data.train_more[votes]
        texts, inverse = np.unique(np.concatenate([less, more]), return_inverse=True)
        n = len(votes)
        batch = {}
        if self.texts_per_forward and len(texts) > self.texts_per_forward:
            order = np.argsort(-self.data.tokens.lengths_at(self.max_length)[texts], kind="stable")
            rank = np.empty_like(order)
            rank[order] = np.arange(len(order))
            texts, inverse = texts[order], rank[inverse]
            step = self.texts_per_forward
            batch["chunks"] = [self.data.tokens.batch(texts[i : i + step], self.max_length) for i in range(0, len(texts), step)]
        else:
            batch["input_ids"], batch["attention_mask"] = self.data.tokens.batch(texts, self.max_length)  # (U, T)
        batch["less"] = torch.from_numpy(inverse[:n])  # (B,) row of each vote's lower text among the U
        batch["more"] = torch.from_numpy(inverse[n:])
        return batch


class _TextCollate:
    def __init__(self, tokens: TokenizedTexts, texts: np.ndarray, max_length: int):
        self.tokens, self.texts, self.max_length = tokens, texts, max_length

    def __call__(self, positions: list[int]) -> dict[str, torch.Tensor]:
        positions = np.asarray(positions)
        input_ids, mask = self.tokens.batch(self.texts[positions], self.max_length)
        return {"input_ids": input_ids, "attention_mask": mask, "position": torch.from_numpy(positions)}


class _ScoredTextCollate:
    """Training texts -> one batch for pointwise regression: their tokens (chunked like votes) and scores."""

    def __init__(self, data: FoldData, max_length: int, texts_per_forward: int | None = None):
        self.data, self.max_length, self.texts_per_forward = data, max_length, texts_per_forward

    def __call__(self, positions: list[int]) -> dict:
        texts = self.data.train_texts[np.asarray(positions)]
        if self.texts_per_forward and len(texts) > self.texts_per_forward:
            texts = texts[np.argsort(-self.data.tokens.lengths_at(self.max_length)[texts], kind="stable")]
            step = self.texts_per_forward
            batch = {"chunks": [self.data.tokens.batch(texts[i : i + step], self.max_length) for i in range(0, len(texts), step)]}
        else:
            batch = dict(zip(("input_ids", "attention_mask"), self.data.tokens.batch(texts, self.max_length)))
        batch["targets"] = torch.from_numpy(self.data.scores[texts])
        return batch


class LengthGroupedBatches(Sampler):
    """Shuffled batches of votes with similar lengths, so little of each batch is padding.

    Each epoch: shuffle the votes, cut them into groups of `group` batches, sort each group by the
    vote's longer text, cut it into batches, then shuffle the order of all batches. Every vote is
    used exactly once per epoch; the order is deterministic given the seed and the epoch.
    """

    def __init__(self, lengths: np.ndarray, batch_size: int, seed: int, group: int = 32):
        self.lengths, self.batch_size, self.seed, self.group = lengths, batch_size, seed, group
        self.epoch = 0

    def __len__(self) -> int:
        return -(-len(self.lengths) // self.batch_size)

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        order = rng.permutation(len(self.lengths))
        span = self.batch_size * self.group
        batches = []
        for start in range(0, len(order), span):
            chunk = order[start : start + span]
            chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            batches += [chunk[i : i + self.batch_size].tolist() for i in range(0, len(chunk), self.batch_size)]
        for b in rng.permutation(len(batches)):
            yield batches[b]


def train_loader(
    data: FoldData, batch_size: int, max_length: int, seed: int, length_grouping: bool = True,
    texts_per_forward: int | None = None,
) -> DataLoader:
    """Vote batches, deterministic given the seed: length-grouped (default) or plainly shuffled.
    No worker processes: collation is cheap numpy slicing, and a worker would compete with the
    trial's own CPU threads."""
    collate = _VoteCollate(data, max_length, texts_per_forward)
    if length_grouping:
        lengths = data.tokens.lengths_at(max_length)
        vote_len = np.maximum(lengths[data.train_less], lengths[data.train_more])
        sampler = LengthGroupedBatches(vote_len, batch_size, seed)
        return DataLoader(range(len(data.train_less)), batch_sampler=sampler, collate_fn=collate, num_workers=0)
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        range(len(data.train_less)), batch_size=batch_size, shuffle=True, generator=generator,
        collate_fn=collate, num_workers=0,
    )


def scored_text_loader(
    data: FoldData, batch_size: int, max_length: int, seed: int, length_grouping: bool = True,
    texts_per_forward: int | None = None,
) -> DataLoader:
    """Batches of training texts with their scores (train.loss mse), shuffled like vote batches."""
    if data.train_texts is None or data.scores is None:
        raise ValueError("pointwise training needs scored texts (data.format scores or labels)")
    collate = _ScoredTextCollate(data, max_length, texts_per_forward)
    items = range(len(data.train_texts))
    if length_grouping:
        sampler = LengthGroupedBatches(data.tokens.lengths_at(max_length)[data.train_texts], batch_size, seed)
        return DataLoader(items, batch_sampler=sampler, collate_fn=collate, num_workers=0)
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(items, batch_size=batch_size, shuffle=True, generator=generator, collate_fn=collate, num_workers=0)


def text_loader(tokens: TokenizedTexts, texts: np.ndarray, batch_size: int, max_length: int) -> DataLoader:
    """Batches over `texts` (indices into tokens), longest first so each batch pads little.
    Batches carry each text's position in `texts`."""
    order = np.argsort(-tokens.lengths_at(max_length)[texts], kind="stable")
    batches = [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    return DataLoader(batches, batch_size=None, collate_fn=_TextCollate(tokens, texts, max_length), num_workers=0)
