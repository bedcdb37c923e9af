"""A tiny prepared text dataset (DATA/toy/dataset.h5) and the train options of a run of a few steps
on it, for the tracking and sweep tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from duvae_cli.data.store import SPECIALS, Built, SplitData, write_dataset


def _split(n: int, rng: np.random.Generator) -> SplitData:
    lengths = rng.integers(1, 9, n)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return SplitData({"tokens": rng.integers(4, 20, offsets[-1]).astype(np.int32), "offsets": offsets})


def make_toy_data(root: Path, sizes: tuple[int, int, int] = (48, 24, 24)) -> Path:
    """48 train, 24 valid, 24 test sentences (or `sizes`) over 16 words; returns the data root."""
    rng = np.random.default_rng(0)
    built = Built(kind="text", splits={name: _split(n, rng) for name, n in zip(("train", "valid", "test"), sizes)},
                  vocab=[*SPECIALS, *(f"w{i}" for i in range(16))], tokenizer="word")
    write_dataset(root / "toy" / "dataset.h5", "toy", built)
    return root


def toy_sets(data_root: Path) -> list[str]:
    """--set options: 8-unit LSTMs, 2 latent dims, batches of 16 (3 steps per epoch), CPU."""
    values = dict(data_root=data_root, embed_dim=8, hidden_dim=8, latent_dim=2, batch_size=16,
                  eval_batch_size=24, warm_up=1.0, device="cpu")
    return [a for k, v in values.items() for a in ("--set", f"{k}={v}")]
