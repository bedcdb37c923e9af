"""Image splits: the fixed binarisation, a split's arrays, and reading an .npz without pickles."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from duvae_cli.data.store import SplitData
from duvae_cli.errors import DuvaeError


def binarize(grey: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One fixed Bernoulli draw per pixel: uint8 grey levels 0..255 -> uint8 0/1 with P(1) = grey/255."""
    return (rng.random(grey.shape) < grey / 255.0).astype(np.uint8)


def image_split(images: np.ndarray, binarized: bool, source: str, **labels: np.ndarray | None) -> SplitData:
    arrays = {"images": np.ascontiguousarray(images, dtype=np.uint8)}
    arrays.update({key: np.asarray(value, dtype=np.int64) for key, value in labels.items() if value is not None})
    return SplitData(arrays=arrays, attrs={"binarized": bool(binarized)}, source=source)


def load_npz(path: Path, shown: str | None = None) -> dict[str, np.ndarray]:
    """All arrays of an npz (no pickles); an unreadable file is a one-line error."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DuvaeError(f"{shown or path}: not a readable .npz file ({exc})".replace("\n", " ")) from None
