"""Omniglot at 28x28 (design.md §2) from the 105x105 originals, or from Burda's chardata.mat.

Sources, first found wins: images_{background,evaluation}.npz (bool (n_chars, 20, 105, 105), True =
background; labels = character index within the file), Lake's images_{background,evaluation}.zip of
PNGs (ALPHABET/characterNN/IIII_DD.png, IIII = Lake's character id, DD = drawer), or chardata.mat.

Pixels: ink = 1, then an exact area average 105 -> 28 (each output pixel covers 3.75 x 3.75 input
pixels; separable overlap weights), stored as uint8 grey levels round(255 g). Splits: per character,
drawers 1-15 train and 16-20 test; the last 2,000 of the seeded shuffle of train become valid.
Train keeps grey levels (binarised afresh each batch at training time); valid and test are binarised
once here with the same seeded stream (shuffle, then valid, then test) and stored as 0/1.
Per image: labels = global character id (Lake's id - 1, 0..1622), alphabet = row of alphabets.csv
(0..49, Lake's order), character = index within the alphabet (0-based).
"""

from __future__ import annotations

import csv
import functools
import io
import json
import re
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from duvae_cli.prepare.download import find_files
from duvae_cli.data.images import binarize, image_split, load_npz
from duvae_cli.prepare.mnist import source_record
from duvae_cli.data.store import Built
from duvae_cli.errors import DuvaeError
from duvae_cli.progress import Reporter

SIDE, SMALL = 105, 28
TRAIN_DRAWERS = 15
VALID_SIZE = 2000
PARTS = ("background", "evaluation")
_MEMBER = re.compile(r"(?:^|/)(?P<alphabet>[^/]+)/character\d+/(?P<id>\d+)_(?P<drawer>\d+)\.png$")


@dataclass(frozen=True)
class Alphabet:
    part: str  # background or evaluation
    name: str
    first_id: int  # Lake's 1-based character ids, inclusive
    last_id: int


@functools.lru_cache(maxsize=1)
def alphabets() -> tuple[Alphabet, ...]:
    """The 50 alphabets in Lake's id order, from the alphabets.csv shipped with the package."""
    text = resources.files("duvae_cli.prepare").joinpath("alphabets.csv").read_text(encoding="utf-8")
    return tuple(Alphabet(r["split"], r["alphabet"], int(r["first_id"]), int(r["last_id"]))
                 for r in csv.DictReader(io.StringIO(text)))


@dataclass
class _Raw:
    """All images of a source, before splitting."""

    grey: np.ndarray  # uint8 (N, 28, 28)
    is_test: np.ndarray  # bool (N,)
    labels: np.ndarray | None  # int64 (N,) global character id
    alphabet: np.ndarray | None
    character: np.ndarray | None
    files: list[Path]
    num_labels: int
    notes: list[str]


def area_matrix(src: int = SIDE, dst: int = SMALL) -> np.ndarray:
    """(dst, src) weights: overlap of output cell i, [i s, (i+1) s) with s = src/dst, with input
    pixel [j, j+1), divided by s. Rows sum to 1, so A @ X @ A.T is the exact area average."""
    scale = src / dst
    lo = np.arange(dst)[:, None] * scale
    j = np.arange(src)[None, :]
    overlap = np.clip(np.minimum(lo + scale, j + 1) - np.maximum(lo, j), 0, None)
    return overlap / scale


def downsample(ink: np.ndarray) -> np.ndarray:
    """(N, 105, 105) ink in [0, 1] -> uint8 (N, 28, 28) grey levels 0..255."""
    a = area_matrix()
    grey = a @ ink.astype(np.float64) @ a.T  # (N, 28, 28)
    return np.rint(grey * 255).astype(np.uint8)


def build_omniglot(spec, source: Path, options, reporter: Reporter) -> Built:
    raw = _read_source(source, reporter)
    rng = np.random.Generator(np.random.PCG64(options.seed))
    train_all, test = np.flatnonzero(~raw.is_test), np.flatnonzero(raw.is_test)
    train_ranks, valid_ranks = split_train_pool(len(train_all), rng)
    train, valid = train_all[train_ranks], train_all[valid_ranks]
    n_valid = len(valid)
    built = Built(kind="image", splits={}, num_labels=raw.num_labels, notes=raw.notes)
    name = " + ".join(p.name for p in raw.files)
    seed = options.seed
    pieces = {"train": (train, False, f"{name}: train images, grey levels"),
              "valid": (valid, True, f"{name}: last {n_valid} of the shuffled train images, binarised "
                                     f"once (seed {seed})"),
              "test": (test, True, f"{name}: test images, binarised once (seed {seed})")}
    for split, (index, binarized, origin) in pieces.items():
        if len(index) == 0:
            continue
        images = binarize(raw.grey[index], rng) if binarized else raw.grey[index]
        built.splits[split] = image_split(images, binarized, origin, **_labels(raw, index))
    built.sources = [source_record(p, spec.checksums, built.notes) for p in raw.files]
    if raw.alphabet is not None and not any(p.suffix == ".mat" for p in raw.files):  # Lake's order
        built.attrs["alphabets"] = json.dumps([a.name for a in alphabets()])
    if n_valid != VALID_SIZE:
        built.notes.append(f"fewer than {10 * VALID_SIZE} train images: valid is a tenth of them ({n_valid})")
    return built


def split_train_pool(n_pool: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Positions (sorted) of the train and valid images within the train pool (drawers 1-15 of every
    character, in (character, drawer) order): the last VALID_SIZE of a seeded shuffle are valid."""
    n_valid = VALID_SIZE if n_pool >= 10 * VALID_SIZE else n_pool // 10
    order = rng.permutation(n_pool)
    cut = n_pool - n_valid
    return np.sort(order[:cut]), np.sort(order[cut:])


def pool_positions(dataset) -> tuple[np.ndarray, np.ndarray] | None:
    """Where each stored train and valid image sits in the train pool's (character, drawer) order,
    recomputed from the seed `prepare` recorded (the file keeps no drawer numbers); None when the
    recomputed order does not fit the stored labels (another recipe, a chardata.mat source)."""
    train, valid = dataset.splits.get("train"), dataset.splits.get("valid")
    seed = dataset.attrs.get("seed")
    if train is None or valid is None or seed is None or train.labels is None:
        return None
    rng = np.random.Generator(np.random.PCG64(int(seed)))
    positions = split_train_pool(len(train) + len(valid), rng)
    if len(positions[1]) != len(valid):
        return None
    labels = np.empty(len(train) + len(valid), dtype=np.int64)
    labels[positions[0]], labels[positions[1]] = train.labels, valid.labels
    return positions if np.all(np.diff(labels) >= 0) else None  # pool order is by character


def _labels(raw: _Raw, index: np.ndarray) -> dict:
    pick = lambda a: None if a is None else a[index]  # noqa: E731
    return {"labels": pick(raw.labels), "alphabet": pick(raw.alphabet), "character": pick(raw.character)}


def _read_source(source: Path, reporter: Reporter) -> _Raw:
    files = find_files(source)
    for suffix, reader in ((".npz", _from_npz), (".zip", _from_zip)):
        found = [files[f"images_{part}{suffix}"] for part in PARTS if f"images_{part}{suffix}" in files]
        if found:
            return reader(found, reporter)
    if "chardata.mat" in files:
        from duvae_cli.prepare.chardata import read_chardata

        return _Raw(**read_chardata(files["chardata.mat"]))
    if source.is_file() and source.suffix in (".npz", ".zip"):
        reader = _from_npz if source.suffix == ".npz" else _from_zip
        return reader([source], reporter)
    raise DuvaeError(f"{source}: expected images_background/images_evaluation .npz or .zip, or chardata.mat")


def _part_of(path: Path) -> str:
    return "evaluation" if "evaluation" in path.name else "background"


def _assemble(chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]], files: list[Path], notes) -> _Raw:
    """chunks of (grey (n,28,28), global id (n,), drawer (n,)), sorted into (id, drawer) order."""
    grey = np.concatenate([c[0] for c in chunks])
    ids = np.concatenate([c[1] for c in chunks]).astype(np.int64)
    drawer = np.concatenate([c[2] for c in chunks]).astype(np.int64)
    order = np.lexsort((drawer, ids))
    grey, ids, drawer = grey[order], ids[order], drawer[order]
    table = alphabets()
    first = np.array([a.first_id - 1 for a in table])
    alphabet = np.searchsorted(first, ids, side="right") - 1
    present = sorted({_part_of(f) for f in files})
    if present != list(PARTS):
        notes.append(f"only the {present[0]} set is present: prepared from it alone")
    return _Raw(grey, drawer > TRAIN_DRAWERS, ids, alphabet, ids - first[alphabet], files,
                table[-1].last_id, notes)


def _from_npz(paths: list[Path], reporter: Reporter) -> _Raw:
    offsets = {a.part: a.first_id - 1 for a in reversed(alphabets())}  # first id of each part
    chunks = []
    for path in paths:
        arrays = load_npz(path)
        images, labels = _check_npz(path, arrays)
        with reporter.task(f"downsampling {path.name}", len(images)) as task:
            for start in range(0, len(images), 50):  # 50 characters = 1,000 images at a time
                block = images[start:start + 50]
                grey = downsample(~block.reshape(-1, SIDE, SIDE))  # True = background, so ink = ~
                ids = labels[start:start + 50].reshape(-1) + offsets[_part_of(path)]
                drawer = np.tile(np.arange(1, block.shape[1] + 1), len(block))
                chunks.append((grey, ids, drawer))
                task.advance(len(block))
    return _assemble(chunks, paths, [])


def _check_npz(path: Path, arrays: dict) -> tuple[np.ndarray, np.ndarray]:
    if "images" not in arrays or "labels" not in arrays:
        raise DuvaeError(f"{path}: expected arrays 'images' and 'labels' (found {', '.join(arrays) or 'none'})")
    images, labels = arrays["images"], arrays["labels"]
    if images.ndim != 4 or images.shape[2:] != (SIDE, SIDE) or labels.shape != images.shape[:2]:
        raise DuvaeError(f"{path}: images {images.shape} / labels {labels.shape}; expected "
                         f"(characters, drawers, {SIDE}, {SIDE}) / (characters, drawers)")
    if images.dtype != bool:
        raise DuvaeError(f"{path}: images are {images.dtype}, expected bool (True = background)")
    size = {a.part: 0 for a in alphabets()}
    for a in alphabets():
        size[a.part] += a.last_id - a.first_id + 1
    limit = size[_part_of(path)]
    if labels.size and (labels.min() < 0 or labels.max() >= limit):
        raise DuvaeError(f"{path}: labels must be character indexes 0..{limit - 1}")
    return images, labels.astype(np.int64)


def _from_zip(paths: list[Path], reporter: Reporter) -> _Raw:
    chunks = []
    for path in paths:
        members = _zip_members(path)
        with zipfile.ZipFile(path) as zf, reporter.task(f"decoding {path.name}", len(members)) as task:
            for start in range(0, len(members), 1000):  # downsample 1,000 images at a time
                block = members[start:start + 1000]
                ink = np.stack([_decode_png(path, zf, member) for member, *_ in block])
                chunks.append((downsample(ink), np.array([m[2] - 1 for m in block]),
                               np.array([m[3] for m in block])))
                task.advance(len(block))
    return _assemble(chunks, paths, [])


def _decode_png(path: Path, zf: zipfile.ZipFile, member: str) -> np.ndarray:
    """bool (105, 105), True = ink (dark pixels)."""
    from PIL import Image  # Pillow comes with matplotlib

    try:
        image = np.asarray(Image.open(io.BytesIO(zf.read(member))).convert("L"))
    except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds for a bad PNG
        raise DuvaeError(f"{path}: {member}: not a readable PNG ({exc})") from None
    if image.shape != (SIDE, SIDE):
        raise DuvaeError(f"{path}: {member}: {image.shape[1]}x{image.shape[0]} pixels, expected {SIDE}x{SIDE}")
    return image < 128


def _zip_members(path: Path) -> list[tuple[str, str, int, int]]:
    """(member, alphabet, Lake character id, drawer) of every Omniglot PNG in a zip."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise DuvaeError(f"{path}: not a readable zip file ({exc})") from None
    members = [(n, m["alphabet"], int(m["id"]), int(m["drawer"])) for n in names if (m := _MEMBER.search(n))]
    if not members:
        raise DuvaeError(f"{path}: no Omniglot images in this zip (expected "
                         "ALPHABET/characterNN/IIII_DD.png members)")
    known = {a.name: a for a in alphabets()}
    for member, alphabet, char_id, _ in members:
        if alphabet not in known or not known[alphabet].first_id <= char_id <= known[alphabet].last_id:
            raise DuvaeError(f"{path}: {member}: character {char_id} is not in alphabet {alphabet!r} "
                             "of alphabets.csv")
    return members
