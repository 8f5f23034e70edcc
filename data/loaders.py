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
class FoldInputs:
    """What training and validation read for one fold: the tokenised texts and, per vote, which texts
    it compares (a FoldSplit, data/folds.py, says only which votes train and which validate); cheap to pickle.

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
        return positions_among_texts(self.val_less, self.val_more)


def positions_among_texts(less: np.ndarray, more: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The unique texts of some votes (sorted), and each vote's (less, more) position among them: the
    order in which validation scores its texts, and so of the scores a trial keeps."""
    texts, inverse = np.unique(np.concatenate([less, more]), return_inverse=True)
    n = len(less)
    return texts, inverse[:n], inverse[n:]


class _VoteCollate:
    """Votes -> one batch of their unique texts. With `texts_per_forward`, the unique texts are
    sorted by length and cut into chunks of that many, each padded only to its own longest text
    (a batch's less- and more-toxic texts differ a lot in length, so one padded block wastes much)."""

    def __init__(self, data: FoldInputs, max_length: int, texts_per_forward: int | None = None):
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

    def __init__(self, data: FoldInputs, max_length: int, texts_per_forward: int | None = None):
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


class EpochBatches(Sampler):
    """Shuffled batches whose order depends only on (seed, epoch), so a retried or resumed run draws
    exactly the batches the uninterrupted run would. The training loop sets the epoch and, when it
    resumes inside an epoch, how many of that epoch's batches were already trained (set_epoch)."""

    def __init__(self, n_items: int, batch_size: int, seed: int):
        self.n_items, self.batch_size, self.seed = n_items, batch_size, seed
        self.epoch, self._skip = 0, 0

    @property
    def sampler(self):  # Lightning calls `batch_sampler.sampler.set_epoch(epoch)` before each epoch
        return self

    def set_epoch(self, epoch: int, skip: int | None = None) -> None:
        """Draw epoch `epoch`'s batches next; with `skip`, leave out its first `skip` (already trained)."""
        self.epoch = epoch
        if skip is not None:
            self._skip = skip

    def __len__(self) -> int:
        return -(-self.n_items // self.batch_size)

    def epoch_batches(self, rng: np.random.Generator) -> list[list[int]]:
        order = rng.permutation(self.n_items)
        return [order[i : i + self.batch_size].tolist() for i in range(0, self.n_items, self.batch_size)]

    def __iter__(self):
        batches = self.epoch_batches(np.random.default_rng([self.seed, self.epoch]))
        skip, self._skip = self._skip, 0
        yield from batches[skip:]


class LengthGroupedBatches(EpochBatches):
    """Shuffled batches of votes with similar lengths, so little of each batch is padding.

    Each epoch: shuffle the votes, cut them into groups of `group` batches, sort each group by the
    vote's longer text, cut it into batches, then shuffle the order of all batches. Every vote is
    used exactly once per epoch; the order is deterministic given the seed and the epoch.
    """

    def __init__(self, lengths: np.ndarray, batch_size: int, seed: int, group: int = 32):
        super().__init__(len(lengths), batch_size, seed)
        self.lengths, self.group = lengths, group

    def epoch_batches(self, rng: np.random.Generator) -> list[list[int]]:
        order = rng.permutation(len(self.lengths))
        span = self.batch_size * self.group
        batches = []
        for start in range(0, len(order), span):
            chunk = order[start : start + span]
            chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            batches += [chunk[i : i + self.batch_size].tolist() for i in range(0, len(chunk), self.batch_size)]
        return [batches[b] for b in rng.permutation(len(batches))]


class ShardedBatches(Sampler):
    """This rank's share of every batch of `batches`, for data-parallel training: each of `world`
    processes draws the same batches (same seed) and takes every world-th item of each, so together
    they train on exactly the batches one process would. A batch with fewer items than processes
    (at most the epoch's last) is skipped, so no process ever gets an empty one."""

    def __init__(self, batches: EpochBatches, n_items: int, batch_size: int, rank: int, world: int):
        self.batches, self.rank, self.world = batches, rank, world
        self.n_items, self.batch_size = n_items, batch_size

    @property
    def sampler(self):  # see EpochBatches.sampler
        return self

    def set_epoch(self, epoch: int, skip: int | None = None) -> None:
        # Batches too small to share are never yielded; they sit at no fixed place in the epoch, so
        # skipping k yielded batches means skipping past the k-th shareable one.
        if skip:
            shareable = [i for i, b in enumerate(self.batches.epoch_batches(np.random.default_rng([self.batches.seed, epoch])))
                         if len(b) >= self.world]
            skip = shareable[skip - 1] + 1 if skip <= len(shareable) else len(self.batches)
        self.batches.set_epoch(epoch, skip)

    def __len__(self) -> int:
        return sharded_batch_count(self.n_items, self.batch_size, self.world)

    def __iter__(self):
        for batch in self.batches:
            if len(batch) >= self.world:
                yield list(batch)[self.rank :: self.world]


def sharded_batch_count(n_items: int, batch_size: int, world: int = 1) -> int:
    """Batches per epoch over n items: all full ones, plus the remainder when every process gets some."""
    full, rest = divmod(n_items, batch_size)
    return full + (1 if rest >= world else 0)


def _batches(n_items: int, lengths: np.ndarray | None, batch_size: int, seed: int, rank: int, world: int) -> Sampler:
    """Shuffled batches of item indices: length-grouped when lengths are given, sharded for world > 1."""
    batches = LengthGroupedBatches(lengths, batch_size, seed) if lengths is not None else EpochBatches(n_items, batch_size, seed)
    return batches if world == 1 else ShardedBatches(batches, n_items, batch_size, rank, world)


def train_loader(
    data: FoldInputs, batch_size: int, max_length: int, seed: int, length_grouping: bool = True,
    texts_per_forward: int | None = None, rank: int = 0, world: int = 1,
) -> DataLoader:
    """Vote batches, deterministic given the seed: length-grouped (default) or plainly shuffled.
    With world > 1 (data-parallel training) this process's share of each batch (ShardedBatches).
    No worker processes: collation is cheap numpy slicing, and a worker would compete with the
    trial's own CPU threads."""
    collate = _VoteCollate(data, max_length, texts_per_forward)
    lengths = None
    if length_grouping:
        token_lengths = data.tokens.lengths_at(max_length)
        lengths = np.maximum(token_lengths[data.train_less], token_lengths[data.train_more])
    n = len(data.train_less)
    sampler = _batches(n, lengths, batch_size, seed, rank, world)
    return DataLoader(range(n), batch_sampler=sampler, collate_fn=collate, num_workers=0)


def scored_text_loader(
    data: FoldInputs, batch_size: int, max_length: int, seed: int, length_grouping: bool = True,
    texts_per_forward: int | None = None, rank: int = 0, world: int = 1,
) -> DataLoader:
    """Batches of training texts with their scores (train.loss mse), shuffled like vote batches."""
    if data.train_texts is None or data.scores is None:
        raise ValueError("pointwise training needs scored texts (data.format scores or labels)")
    collate = _ScoredTextCollate(data, max_length, texts_per_forward)
    n = len(data.train_texts)
    lengths = data.tokens.lengths_at(max_length)[data.train_texts] if length_grouping else None
    sampler = _batches(n, lengths, batch_size, seed, rank, world)
    return DataLoader(range(n), batch_sampler=sampler, collate_fn=collate, num_workers=0)


def text_loader(
    tokens: TokenizedTexts, texts: np.ndarray, batch_size: int, max_length: int, rank: int = 0, world: int = 1,
) -> DataLoader:
    """Batches over `texts` (indices into tokens), longest first so each batch pads little.
    Batches carry each text's position in `texts`. With world > 1, every world-th batch; a process
    left one short repeats a batch, so all run the same number of steps (DDP's forward may sync)."""
    order = np.argsort(-tokens.lengths_at(max_length)[texts], kind="stable")
    batches = [order[i : i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    if world > 1:
        per_rank = -(-len(batches) // world)
        mine = batches[rank::world]
        batches = mine + [(mine or batches)[-1]] * (per_rank - len(mine))
    return DataLoader(batches, batch_size=None, collate_fn=_TextCollate(tokens, texts, max_length), num_workers=0)
