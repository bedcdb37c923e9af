"""Binarized MNIST: the fixed 50k/10k/10k binarisation of Larochelle & Murray: the npz of the local
copy (keys train/valid/test, uint8 0/1, (n, 784) row-major) or the three classic
binarized_mnist_{train,valid,test}.amat text files (784 space-separated 0/1 per line). It has no labels.
Also the source record both image datasets keep (`source_record`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from duvae_cli.data.images import image_split, load_npz
from duvae_cli.data.store import Built
from duvae_cli.errors import DuvaeError
from duvae_cli.io import sha256_file
from duvae_cli.prepare.download import find_files
from duvae_cli.progress import Reporter

MNIST_NPZ = "binarized_mnist.npz"
MNIST_AMAT = {split: f"binarized_mnist_{split}.amat" for split in ("train", "valid", "test")}


def source_record(path: Path, checksums: dict, notes: list[str]) -> dict:
    digest = sha256_file(path)
    if checksums.get(path.name) not in (None, digest):
        notes.append(f"{path.name}: sha256 differs from the registry's known copy")
    return {"file": path.name, "sha256": digest}


def build_mnist(spec, source: Path, options, reporter: Reporter) -> Built:
    files = find_files(source)
    built = Built(kind="image", splits={})
    if MNIST_NPZ in files or (source.is_file() and source.suffix == ".npz"):
        path = files.get(MNIST_NPZ, source)
        arrays = _mnist_npz(path)
        used = [path]
    else:
        present = {split: files[name] for split, name in MNIST_AMAT.items() if name in files}
        if "train" not in present:
            raise DuvaeError(f"{source}: expected {MNIST_NPZ} or {', '.join(MNIST_AMAT.values())}")
        arrays = {split: _read_amat(path, reporter) for split, path in present.items()}
        used = list(present.values())
        built.notes.extend(f"no {s} file: no {s} split written" for s in MNIST_AMAT if s not in present)
    for split, images in arrays.items():
        built.splits[split] = image_split(images.reshape(-1, 28, 28), True, used[0].name if len(used) == 1
                                          else MNIST_AMAT[split])
    built.sources = [source_record(path, spec.checksums, built.notes) for path in used]
    built.notes.append("fixed binarisation as distributed; no labels in this data")
    return built


def _mnist_npz(path: Path) -> dict[str, np.ndarray]:
    arrays = load_npz(path)
    missing = [key for key in ("train", "valid", "test") if key not in arrays]
    if missing:
        raise DuvaeError(f"{path}: expected arrays train, valid, test (missing {', '.join(missing)}; "
                         f"found {', '.join(arrays) or 'none'})")
    for key in ("train", "valid", "test"):
        array = arrays[key]
        if array.ndim != 2 or array.shape[1] != 784:
            raise DuvaeError(f"{path}: array {key!r} has shape {array.shape}, expected (n, 784)")
        if array.size and (array.min() < 0 or array.max() > 1):
            raise DuvaeError(f"{path}: array {key!r} holds values outside 0/1")
    return {key: arrays[key].astype(np.uint8) for key in ("train", "valid", "test")}


def _read_amat(path: Path, reporter: Reporter) -> np.ndarray:
    """784 space-separated 0/1 values per line; errors name the line."""
    rows = []
    with open(path, "rb") as fh, reporter.task(f"reading {path.name}", None) as task:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            values = line.split()
            pixels = np.frombuffer(b"".join(values), dtype=np.uint8) - ord("0")  # wraps below '0'
            if len(values) != 784 or len(pixels) != 784 or pixels.max() > 1:
                raise DuvaeError(f"{path}: line {number}: expected 784 values 0 or 1 "
                                 f"(found {len(values)} fields)")
            rows.append(pixels)
            task.advance()
    if not rows:
        raise DuvaeError(f"{path}: empty file (no images)")
    return np.stack(rows)
