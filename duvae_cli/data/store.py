"""The prepared-dataset file, `OUT/<name>/dataset.h5`: writing it and reading it back.

Layout (schema 1, described for users in docs/formats.md):

    /                 attrs: schema_version, name, kind ("text"|"image"), tokenizer (text only),
                      pad_id, bos_id, eos_id, unk_id, sources (JSON [{file, sha256}]),
                      num_labels, duvae_version, plus provenance attrs of the recipe
    /vocab            variable-length UTF-8 strings (text only); id = row
    /sentencepiece_model   opaque bytes (tokenizer "sentencepiece" only)
    /train, /valid, /test  one group per split that exists:
        text:  tokens int32 (T,) word ids without <s>/</s>; offsets int64 (n+1,); labels int64 (n,)?
               z float32 (n, 2)? (synthetic: the true latent code of each sentence)
        image: images uint8 (N, 28, 28); attr binarized; labels int64 (N,)?;
               alphabet, character int64 (N,)? (Omniglot)
    /subsets/<name>   named subsets (e.g. short yelp's label budgets), same layout as a split

Every dataset is written with track_times=False and no absolute paths or clocks in attributes, so
preparing the same input twice gives byte-identical files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import h5py
import numpy as np

from duvae_cli import __version__
from duvae_cli.errors import DuvaeError
from duvae_cli.io import atomic_h5, sha256_file

SCHEMA_VERSION = 1
SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
SPLITS = ("train", "valid", "test")


def dataset_path(name: str, root: str | Path = "data") -> Path:
    """Where `duvae prepare NAME --out ROOT` writes its file."""
    return Path(root) / name / "dataset.h5"


# ----------------------------------------------------------------------------------- in memory ---

@dataclass
class SplitData:
    """One split (or subset) ready to be written: the arrays of its group and its attributes."""

    arrays: dict[str, np.ndarray]
    attrs: dict[str, object] = field(default_factory=dict)
    source: str = ""  # human-readable origin, for the summary
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> lines dropped


@dataclass
class Built:
    """Everything a recipe produces; `write_dataset` turns it into the file."""

    kind: str  # "text" or "image"
    splits: dict[str, SplitData]
    subsets: dict[str, SplitData] = field(default_factory=dict)
    vocab: list[str] | None = None
    tokenizer: str | None = None
    sentencepiece_model: bytes | None = None
    sources: list[dict] = field(default_factory=list)  # [{file, sha256}], file names relative
    num_labels: int = 0
    notes: list[str] = field(default_factory=list)
    attrs: dict[str, object] = field(default_factory=dict)  # extra provenance (JSON-able scalars)


def write_dataset(path: Path, name: str, built: Built) -> None:
    """Write `built` to `path` atomically: built in memory, written to a temp file in the same folder,
    renamed when complete (io.atomic_h5: a full disk is one line naming `path`, no temp file left)."""
    with atomic_h5(path) as f:
        _write_root(f, name, built)
        for split, data in built.splits.items():
            _write_group(f.create_group(split), data)
        for subset, data in built.subsets.items():
            _write_group(f.create_group(f"subsets/{subset}"), data)


def _write_root(f: h5py.File, name: str, built: Built) -> None:
    attrs = {
        "schema_version": SCHEMA_VERSION, "name": name, "kind": built.kind,
        "pad_id": PAD_ID, "bos_id": BOS_ID, "eos_id": EOS_ID, "unk_id": UNK_ID,
        "sources": json.dumps(built.sources), "num_labels": int(built.num_labels),
        "duvae_version": __version__,
    }
    if built.kind == "text":
        attrs["tokenizer"] = built.tokenizer
    attrs.update(built.attrs)
    for key, value in attrs.items():
        f.attrs[key] = value
    if built.vocab is not None:
        f.create_dataset("vocab", data=np.array(built.vocab, dtype=object),
                         dtype=h5py.string_dtype("utf-8"), track_times=False)
    if built.sentencepiece_model is not None:
        f.create_dataset("sentencepiece_model", data=np.void(built.sentencepiece_model), track_times=False)


def _write_group(group: h5py.Group, data: SplitData) -> None:
    for key, value in data.attrs.items():
        group.attrs[key] = value
    for key, array in data.arrays.items():
        group.create_dataset(key, data=array, track_times=False)


# ------------------------------------------------------------------------------------- reading ---

@dataclass(frozen=True)
class TextSplit:
    """Sentences as one flat id array: sentence i is tokens[offsets[i]:offsets[i+1]]."""

    tokens: np.ndarray  # int32 (T,), no <s>/</s>
    offsets: np.ndarray  # int64 (n+1,)
    labels: np.ndarray | None = None  # int64 (n,)
    z: np.ndarray | None = None  # float32 (n, 2): the true latent code (synthetic only)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        """Tokens per sentence, int64 (n,), without <s>/</s>."""
        return np.diff(self.offsets)

    def sentence(self, i: int) -> np.ndarray:
        return self.tokens[self.offsets[i]:self.offsets[i + 1]]


@dataclass(frozen=True)
class ImageSplit:
    images: np.ndarray  # uint8 (N, 28, 28): 0/1 when binarized, else grey levels 0..255 (ink high)
    binarized: bool
    labels: np.ndarray | None = None  # int64 (N,)
    alphabet: np.ndarray | None = None  # int64 (N,), Omniglot
    character: np.ndarray | None = None  # int64 (N,), Omniglot: index within its alphabet

    def __len__(self) -> int:
        return len(self.images)


@dataclass(frozen=True)
class _Dataset:
    name: str
    kind: str
    vocab: list[str]
    splits: dict
    subsets: dict
    attrs: dict
    path: Path
    sha256: str

    @property
    def num_labels(self) -> int:
        return int(self.attrs.get("num_labels", 0))


@dataclass(frozen=True)
class TextDataset(_Dataset):
    sentencepiece_model: bytes | None = None

    @property
    def tokenizer(self) -> str:
        return str(self.attrs["tokenizer"])

    def decode(self, ids) -> str:
        """Ids back to text (word tokenizer: words joined by spaces)."""
        if self.sentencepiece_model is not None:
            import sentencepiece

            processor = sentencepiece.SentencePieceProcessor(model_proto=self.sentencepiece_model)
            return processor.decode([int(i) for i in ids])
        return " ".join(self.vocab[int(i)] for i in ids)


@dataclass(frozen=True)
class ImageDataset(_Dataset):
    pass


Dataset = Union[TextDataset, ImageDataset]


def peek_kind(path: str | Path) -> str | None:
    """The data kind ("text" or "image") a prepared dataset file declares, read from its attributes
    alone; None when it cannot be read (load_dataset then says why in one line)."""
    try:
        with h5py.File(path, "r") as f:
            kind = _plain(f.attrs.get("kind"))
    except (OSError, ValueError, TypeError):
        return None
    return kind if kind in ("text", "image") else None


def load_dataset(path: str | Path) -> Dataset:
    """Read a prepared dataset fully into memory; a missing or foreign file is a one-line DuvaeError."""
    path = Path(path)
    if path.is_dir():
        raise DuvaeError(f"{path}: a directory, not a dataset file (remove it and run `duvae prepare NAME`)")
    if not path.is_file():
        raise DuvaeError(f"{path}: no such dataset file (run `duvae prepare NAME` first)")
    try:
        with h5py.File(path, "r") as f:
            return _read(f, path)
    except OSError as exc:
        raise DuvaeError(f"{path}: not a readable HDF5 file ({exc})") from None
    except (KeyError, ValueError, TypeError) as exc:
        raise DuvaeError(f"{path}: damaged duvae dataset ({exc})") from None


def _read(f: h5py.File, path: Path) -> Dataset:
    attrs = {key: _plain(value) for key, value in f.attrs.items()}
    if "schema_version" not in attrs or attrs.get("kind") not in ("text", "image"):
        raise DuvaeError(f"{path}: not a duvae dataset (no schema_version/kind attributes)")
    if attrs["schema_version"] != SCHEMA_VERSION:
        raise DuvaeError(f"{path}: dataset schema {attrs['schema_version']}, this duvae reads "
                         f"{SCHEMA_VERSION}; prepare it again with --force")
    vocab = list(f["vocab"].asstr()[:]) if attrs["kind"] == "text" else []
    groups = [*((name, f[name]) for name in SPLITS if name in f),
              *((f"subsets/{name}", group) for name, group in (f["subsets"].items() if "subsets" in f else ()))]
    reader = _read_text_group if attrs["kind"] == "text" else _read_image_group
    read = {name: _checked(name, reader(group), len(vocab)) for name, group in groups}
    splits = {name: data for name, data in read.items() if not name.startswith("subsets/")}
    subsets = {name.split("/", 1)[1]: data for name, data in read.items() if name.startswith("subsets/")}
    common = dict(name=str(attrs["name"]), kind=attrs["kind"], splits=splits, subsets=subsets,
                  attrs=attrs, path=path, sha256=sha256_file(path))
    if attrs["kind"] == "image":
        return ImageDataset(vocab=[], **common)
    model = bytes(f["sentencepiece_model"][()]) if "sentencepiece_model" in f else None
    return TextDataset(vocab=vocab, sentencepiece_model=model, **common)


def _plain(value: object) -> object:
    """h5py attribute values as plain Python (numpy scalars -> int/float/bool, bytes -> str)."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.generic):
        return value.item()
    return value


def _optional(group: h5py.Group, key: str) -> np.ndarray | None:
    return group[key][()] if key in group else None


def _checked(name: str, split, vocab_size: int):
    """`split` if its arrays are consistent, else ValueError naming the split and what is wrong (a
    damaged or hand-edited file would otherwise fail deep in numpy or torch, or read other sentences)."""
    problem = _text_problem(split, vocab_size) if isinstance(split, TextSplit) else _image_problem(split)
    problem = problem or _per_example_problem(split)
    if problem:
        raise ValueError(f"split {name}: {problem}")
    return split


def _per_example_problem(split) -> str | None:
    """Per-example arrays (labels, z, alphabet, character) of another length; a negative label."""
    for field_name in ("labels", "z", "alphabet", "character"):
        value = getattr(split, field_name, None)
        if value is not None and len(value) != len(split):
            return f"{len(value)} {field_name} for {len(split)} examples"
    if split.labels is not None and len(split.labels) and split.labels.min() < 0:
        return f"negative label {int(split.labels.min())}"
    return None


def _text_problem(split: TextSplit, vocab_size: int) -> str | None:
    offsets, tokens = split.offsets, split.tokens
    if offsets.ndim != 1 or len(offsets) < 1 or offsets.dtype.kind not in "iu" or tokens.ndim != 1:
        return "offsets and tokens must be 1-D integer arrays"
    if offsets[0] != 0 or offsets[-1] != len(tokens):
        return f"offsets run from {int(offsets[0])} to {int(offsets[-1])}, not from 0 to its {len(tokens):,} tokens"
    falls = np.flatnonzero(np.diff(offsets) < 0)
    if len(falls):
        i = int(falls[0])
        return f"offsets fall at sentence {i} ({int(offsets[i])} -> {int(offsets[i + 1])})"
    if len(tokens) and (tokens.min() < 0 or tokens.max() >= vocab_size):
        bad = int(tokens.min()) if tokens.min() < 0 else int(tokens.max())
        return f"token id {bad} is outside the vocabulary of {vocab_size:,}"
    return None


def _image_problem(split: ImageSplit) -> str | None:
    if split.images.ndim != 3:
        return f"images of shape {split.images.shape}; expected (N, height, width)"
    return None


def _read_text_group(group: h5py.Group) -> TextSplit:
    return TextSplit(tokens=group["tokens"][()], offsets=group["offsets"][()],
                     labels=_optional(group, "labels"), z=_optional(group, "z"))


def _read_image_group(group: h5py.Group) -> ImageSplit:
    return ImageSplit(images=group["images"][()], binarized=bool(group.attrs["binarized"]),
                      labels=_optional(group, "labels"), alphabet=_optional(group, "alphabet"),
                      character=_optional(group, "character"))
