"""Tokenising each unique text once, and cheap batches from the result.

Texts are tokenised once per search (per backbone tokenizer and text handling), at the longest
`max_length` any trial may ask for; a trial with a shorter `max_length` truncates the stored ids
itself, exactly as the tokenizer would. The result is three flat numpy arrays, cheap to pickle and to
share with trials through the Ray object store.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class TokenizedTexts:
    """ids: all token ids back to back; offsets: (N+1,) where text i is ids[offsets[i]:offsets[i+1]].

    Every stored sequence starts and ends with the tokenizer's special tokens ([CLS] ... [SEP]).
    """

    ids: np.ndarray
    offsets: np.ndarray
    pad_id: int
    max_length: int

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def lengths_at(self, max_length: int) -> np.ndarray:
        return np.minimum(self.lengths, max_length)

    def batch(self, text_idx: np.ndarray, max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded (B, T) input_ids and attention_mask for the given texts, T = longest in batch.

        Truncation keeps the first max_length-1 tokens and the final special token, which is what
        `tokenizer(..., truncation=True, max_length=max_length)` does for a single sequence.
        """
        if max_length > self.max_length:
            raise ValueError(f"max_length {max_length} exceeds the tokenised length {self.max_length}")
        lens = self.lengths_at(max_length)[text_idx]
        width = int(lens.max())
        input_ids = np.full((len(text_idx), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(text_idx), width), dtype=np.int64)
        for row, (t, n) in enumerate(zip(text_idx.tolist(), lens.tolist())):
            start, end = self.offsets[t], self.offsets[t + 1]
            if end - start > n:  # truncated: keep the head and the closing special token
                input_ids[row, : n - 1] = self.ids[start : start + n - 1]
                input_ids[row, n - 1] = self.ids[end - 1]
            else:
                input_ids[row, :n] = self.ids[start:end]
            mask[row, :n] = 1
        return torch.from_numpy(input_ids), torch.from_numpy(mask)


def tokenize_texts(texts: list[str], tokenizer, max_length: int, lowercase: bool = False, chunk: int = 4096) -> TokenizedTexts:
    """Tokenise unique texts once with truncation at max_length and no padding."""
    pieces: list[np.ndarray] = []
    for i in range(0, len(texts), chunk):
        part = texts[i : i + chunk]
        if lowercase:
            part = [t.lower() for t in part]
        enc = tokenizer(part, truncation=True, max_length=max_length, padding=False)
        pieces.extend(np.asarray(x, dtype=np.int32) for x in enc["input_ids"])
    lengths = np.array([len(p) for p in pieces], dtype=np.int64)
    offsets = np.zeros(len(pieces) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ids = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int32)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return TokenizedTexts(ids=ids, offsets=offsets, pad_id=int(pad_id), max_length=max_length)


def seen_keys(tokens: TokenizedTexts, max_length: int) -> list[bytes]:
    """Each text as the model sees it at max_length: its ids truncated as `batch` truncates them."""
    keys = []
    for t in range(len(tokens)):
        start, end = int(tokens.offsets[t]), int(tokens.offsets[t + 1])
        ids = tokens.ids[start:end]
        if end - start > max_length:  # the head and the closing special token
            ids = np.concatenate([ids[: max_length - 1], ids[-1:]])
        keys.append(ids.tobytes())
    return keys
