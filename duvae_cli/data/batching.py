"""Batches: `TextBatch` (a padded sentence batch) and `take_rows` (rows of any batch); the batch sources
of the training loop and of validation: length-bucketed text batches (`TextBatches`) and shuffled
image batches (`ImageBatches`, at the end). Every example is used each epoch; no batch has fewer than 2.

Sentences are sorted by length (ties broken at random each epoch) and cut into consecutive batches,
so a batch holds sentences of (nearly) one length and padding is rare; the batch order is shuffled.
The reference instead keeps exact-length batches fixed for the run and skips those under 16, which
silently drops data; duvae pads and masks instead (design.md §2).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

BOS, EOS = 1, 2


class TextBatch(NamedTuple):
    tokens: torch.Tensor  # (B, T) int64
    lengths: torch.Tensor  # (B,) int64, including <s> and </s>

    def to(self, device) -> "TextBatch":
        """On the device; to a GPU from pinned memory, without waiting for the copy."""
        if torch.device(device).type == "cuda" and not self.tokens.is_cuda:
            return TextBatch(self.tokens.pin_memory().to(device, non_blocking=True),
                             self.lengths.pin_memory().to(device, non_blocking=True))
        return TextBatch(self.tokens.to(device), self.lengths.to(device))

    def __len__(self) -> int:
        return self.tokens.shape[0]

    @property
    def n_predicted(self) -> torch.Tensor:
        """Tokens each sentence predicts (words + </s>): the PPL denominator."""
        return self.lengths - 1


def take_rows(batch, rows: slice):
    """The examples `rows` of a batch: an image tensor (B, ...) or a NamedTuple of (B, ...) tensors
    (TextBatch)."""
    if isinstance(batch, torch.Tensor):
        return batch[rows]
    return type(batch)(*(part[rows] for part in batch))


def plan_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator | None = None,
                 min_size: int = 2) -> list[np.ndarray]:
    """Index arrays, one per batch. With `rng`, ties and batch order are shuffled; else deterministic."""
    n = len(lengths)
    if n == 0:
        return []
    keys = lengths.astype(np.float64)
    if rng is not None:
        keys = keys + rng.random(n)  # random order within a length, lengths stay sorted
    order = np.argsort(keys, kind="stable")
    batches = [order[i: i + batch_size] for i in range(0, n, batch_size)]
    if len(batches) > 1 and len(batches[-1]) < min_size:  # e.g. a BN batch of 1: join the previous
        batches[-2:] = [np.concatenate(batches[-2:])]
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def make_batch(tokens: np.ndarray, offsets: np.ndarray, indices: np.ndarray) -> TextBatch:
    """`<s> w1 .. wn </s>` rows padded with 0, from the flat (tokens, offsets) storage."""
    starts, ends = offsets[indices], offsets[indices + 1]
    lengths = (ends - starts + 2).astype(np.int64)
    rows = np.zeros((len(indices), int(lengths.max())), dtype=np.int64)
    rows[:, 0] = BOS
    for row, (start, end) in enumerate(zip(starts, ends)):
        rows[row, 1: 1 + end - start] = tokens[start:end]
        rows[row, 1 + end - start] = EOS
    return TextBatch(torch.from_numpy(rows), torch.from_numpy(lengths))


def sentence_lengths(offsets: np.ndarray) -> np.ndarray:
    return np.diff(offsets)


class TextBatches:
    """The batches of one text split: `plan` cuts index arrays, `batch` materialises one."""

    def __init__(self, split):
        self.split = split
        self.lengths = sentence_lengths(split.offsets)

    def __len__(self) -> int:
        return len(self.lengths)

    def plan(self, batch_size: int, rng: np.random.Generator | None = None,
             min_size: int = 2) -> list[np.ndarray]:
        return plan_batches(self.lengths, batch_size, rng, min_size)

    def batch(self, indices: np.ndarray, train: bool = False) -> TextBatch:
        return make_batch(self.split.tokens, self.split.offsets, indices)


class ImageBatches:
    """The batches of one image split, (B, 1, 28, 28) float tensors of 0/1.

    `plan` shuffles the indices with the epoch's generator and cuts them into consecutive batches
    (a last batch of 1 joins the previous one). Grey-level images (Omniglot's train split) are
    binarised afresh at every training batch with `torch.bernoulli` from torch's global generator,
    whose state every checkpoint saves, so a resumed run draws the same pixels (reference-spec
    §3.2: dynamic binarisation). Outside training a binary split is used as stored (Omniglot's
    valid/test were binarised once at prepare time); a grey split is binarised once, with a
    generator seeded by `seed`, and that binarisation is kept."""

    def __init__(self, split, seed: int = 0):
        self.split, self.seed = split, seed
        self.lengths = np.zeros(len(split), dtype=np.int64)  # evaluation sorts by length: no-op
        self._fixed: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.split)

    def plan(self, batch_size: int, rng: np.random.Generator | None = None,
             min_size: int = 2) -> list[np.ndarray]:
        order = np.arange(len(self)) if rng is None else rng.permutation(len(self))
        batches = [order[i: i + batch_size] for i in range(0, len(order), batch_size)]
        if len(batches) > 1 and len(batches[-1]) < min_size:  # BatchNorm needs >= 2 examples (per rank)
            batches[-2:] = [np.concatenate(batches[-2:])]
        return batches

    def batch(self, indices: np.ndarray, train: bool = False) -> torch.Tensor:
        if self.split.binarized:
            pixels = torch.from_numpy(self.split.images[indices]).float()
        elif train:
            pixels = torch.bernoulli(torch.from_numpy(self.split.images[indices]).float() / 255.0)
        else:
            pixels = torch.from_numpy(self.fixed_binarisation()[indices]).float()
        return pixels.unsqueeze(1)  # (B, 1, H, W)

    def fixed_binarisation(self) -> np.ndarray:
        """uint8 (N, H, W) of 0/1: the stored images if binary, else one seeded Bernoulli draw."""
        from duvae_cli.data.images import binarize

        if self.split.binarized:
            return self.split.images
        if self._fixed is None:
            self._fixed = binarize(self.split.images, np.random.default_rng(self.seed))
        return self._fixed


def batches_for(split, seed: int = 0):
    """The batch source of a split: `TextBatches` or `ImageBatches` (`seed`: see ImageBatches)."""
    if hasattr(split, "offsets"):
        return TextBatches(split)
    if hasattr(split, "images"):
        return ImageBatches(split, seed)
    raise TypeError(f"no batch source for a {type(split).__name__}")
