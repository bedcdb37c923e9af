"""New data for a trained run, read exactly as the run reads its own splits.

Three kinds of INPUT, told apart by the file name:
- `*.h5`: a prepared dataset (`duvae prepare`), one split of it (`split`, default test);
- `*.npz`: images, array `images` (or the file's only array) of shape (N, 28, 28), (N, 1, 28, 28)
  or (N, 784): bool or 0/1 values (used as they are), or grey levels (uint8 0..255 or floats in
  [0, 1]), which are binarised once with a fixed seed as the run's own grey splits are; optional
  `labels` (N,);
- anything else: a UTF-8 text file, one example a line, plain or `LABEL<TAB>sentence` (detected from
  the first line, as `duvae prepare` does). Empty lines are skipped; every example keeps the number
  of its line in the file (`InputData.lines`). `-` reads the same from standard input.

Text is tokenized with the run's own tokenizer: its dataset's word vocabulary (words outside it
become `<unk>`, and are counted, the most frequent kept by name: `InputData.unknown`) or its
sentencepiece model. A dataset.h5 whose vocabulary differs
from the run's is decoded to text and tokenized again with the run's tokenizer.

`fingerprint(split)` is the one place where new data is fingerprinted (see its docstring).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from duvae_cli.data.store import UNK_ID, ImageSplit, TextSplit, load_dataset
from duvae_cli.data.subset import first_examples
from duvae_cli.data.text import STDIN, SourceFile, read_lines
from duvae_cli.errors import DuvaeError, UsageError

NAME_SUFFIXES = (".txt", ".tsv", ".text", ".npz")  # dropped from a file's name (data_name)
TOP_UNKNOWN = 10  # unknown words kept (with their counts) for the report
IMAGE_SIDE = 28  # the image networks read 28 x 28 pixels
BINARISATION_SEED = 0  # as `ImageBatches` binarises a grey split outside training


@dataclass(frozen=True)
class InputData:
    """New examples as the model reads them, with where they came from."""

    name: str  # `data_name` of the file (a dataset.h5: "<dataset name>-<split>"); names outputs
    kind: str  # "text" or "image"
    split: TextSplit | ImageSplit
    source: str  # the path as given, for messages
    lines: np.ndarray | None = None  # int64 (n,): 1-based line of each example in a text file
    n_tokens: int = 0  # text: word (or piece) ids, without <s>/</s>
    n_unk: int = 0  # text: how many of them are <unk>
    unknown: tuple = ()  # text: ((word, count), ...) the most frequent words read as <unk>, most first

    def __len__(self) -> int:
        return len(self.split)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.split)

    @property
    def label(self) -> str:
        """How results on this data are named next to a run's own splits: NAME@FINGERPRINT[:12]."""
        return f"{self.name}@{self.fingerprint[:12]}"

    @property
    def unk_share(self) -> float:
        return self.n_unk / self.n_tokens if self.n_tokens else 0.0

    def sentence_text(self, dataset, i: int) -> str:
        """Example i as text, decoded from its ids with the run's tokenizer (what the model saw)."""
        return dataset.decode(self.split.sentence(i))


def fingerprint(split: TextSplit | ImageSplit) -> str:
    """sha256 (hex) of what the model reads, not of the file's bytes: text = the token ids (int32)
    and sentence offsets (int64), images = the pixels (uint8) and whether they are binary; labels
    (int64) are included when present. So the same examples tokenized the same way have the same
    fingerprint whichever file (or dataset split) they came from, and a file tokenized with another
    vocabulary has another."""
    digest = hashlib.sha256()
    if isinstance(split, TextSplit):
        digest.update(b"duvae-text-v1\0")
        digest.update(np.ascontiguousarray(split.offsets, dtype="<i8").tobytes())
        digest.update(np.ascontiguousarray(split.tokens, dtype="<i4").tobytes())
    else:
        digest.update(b"duvae-image-v1\0" + bytes([int(split.binarized)]))
        digest.update(np.asarray(split.images.shape, dtype="<i8").tobytes())
        digest.update(np.ascontiguousarray(split.images, dtype=np.uint8).tobytes())
    if split.labels is not None:
        digest.update(b"labels\0" + np.ascontiguousarray(split.labels, dtype="<i8").tobytes())
    return digest.hexdigest()


def run_tokenizer(dataset):
    """The tokenizer the run's dataset was prepared with: its word vocabulary (with the corpus's own
    unknown-word token, e.g. PTB's `<unk>`, read as <unk>) or its sentencepiece model."""
    from duvae_cli.prepare.registry import DATASETS
    from duvae_cli.data.vocab import SentencePieceTokenizer, WordTokenizer

    spec = DATASETS.get(dataset.name)
    aliases = spec.unk_aliases if spec is not None else ()
    if dataset.sentencepiece_model is not None:
        return SentencePieceTokenizer(dataset.sentencepiece_model, aliases)
    return WordTokenizer(dataset.vocab, aliases)


def from_texts(texts: Sequence[str], dataset, name: str = "texts", labels: Sequence[int] | None = None,
               lines: np.ndarray | None = None, source: str = "") -> InputData:
    """Sentences (one string each, already split into examples) tokenized with the run's tokenizer."""
    if isinstance(texts, str):
        raise TypeError("texts: expected a list of sentences, got one string")
    tokenizer = run_tokenizer(dataset)
    cleaned = [" ".join(str(t).split()) for t in texts]
    ids = [tokenizer.encode(text) for text in cleaned]
    if not ids:
        raise DuvaeError(f"{source or name}: no sentences")
    unknown = Counter()  # the words behind the <unk> ids, looked up only in sentences that have one
    for text, sentence in zip(cleaned, ids):
        if UNK_ID in sentence:
            unknown.update(tokenizer.unknown(text))
    data = _text_input(ids, labels, name, source or name, lines)
    return dataclasses.replace(data, unknown=tuple(unknown.most_common(TOP_UNKNOWN)))


def _text_input(ids: list[list[int]], labels, name: str, source: str, lines) -> InputData:
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(s) for s in ids])
    tokens = np.fromiter((t for s in ids for t in s), dtype=np.int32, count=int(offsets[-1]))
    split = TextSplit(tokens, offsets, None if labels is None else np.asarray(labels, dtype=np.int64))
    return InputData(name, "text", split, source, lines, int(offsets[-1]), int((tokens == UNK_ID).sum()))


def from_images(images: np.ndarray, name: str = "images", labels=None, source: str = "") -> InputData:
    """Images (N, 28, 28) / (N, 1, 28, 28) / (N, 784): binary values are kept, grey levels (uint8
    0..255 or floats in [0, 1]) are binarised once with a fixed seed, as the run's grey splits are."""
    shown = source or name
    array = np.asarray(images)
    if array.ndim == 2 and array.shape[1] == IMAGE_SIDE ** 2 or array.ndim == 4 and array.shape[1] == 1:
        array = array.reshape(len(array), IMAGE_SIDE, IMAGE_SIDE)
    if array.ndim != 3 or array.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE) or len(array) == 0:
        raise DuvaeError(f"{shown}: images of shape {array.shape}; expected (N, 28, 28), (N, 1, 28, 28) "
                         "or (N, 784) with N >= 1")
    if array.dtype.kind == "f":
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise DuvaeError(f"{shown}: float images must lie in [0, 1]")
        binary = np.isin(array, (0.0, 1.0)).all()
        array = array if binary else np.rint(array * 255)
    elif array.dtype.kind not in "biu" or array.min() < 0 or array.max() > 255:
        raise DuvaeError(f"{shown}: images of dtype {array.dtype}; expected bool, 0/1, uint8 0..255 or "
                         "floats in [0, 1]")
    binary = bool(np.isin(array, (0, 1)).all())
    split = ImageSplit(array.astype(np.uint8), binary, None if labels is None else np.asarray(labels, np.int64))
    if not binary:  # the one fixed binarisation evaluation uses, stored so every reader sees the same
        from duvae_cli.data.batching import ImageBatches

        split = ImageSplit(ImageBatches(split, BINARISATION_SEED).fixed_binarisation(), True, split.labels)
    return InputData(name, "image", split, shown)


def read_input(path: str | Path, dataset, split: str | None = None, name: str | None = None,
               limit: int | None = None) -> InputData:
    """INPUT as the run with dataset `dataset` reads it (see the module docstring); `-` is text on
    standard input. `limit`: only the first N examples are read (`generate --limit`)."""
    path = Path(path)
    if str(path) != STDIN and not path.is_file():
        raise UsageError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".h5":
        data = _read_dataset(path, dataset, split or "test", limit)
    elif split is not None:
        raise UsageError(f"--split {split}: only for a prepared dataset.h5 INPUT")
    elif suffix == ".npz":
        data = _read_npz(path, limit)
    else:
        data = _read_text(path, dataset, limit)
    if data.kind != dataset.kind:
        raise UsageError(f"{path}: {data.kind} data, but the run was trained on {dataset.kind} "
                         f"({dataset.name})")
    return dataclasses.replace(data, name=_safe(name)) if name else data


def data_name(path: Path) -> str:
    """The name results on a file go by: its file name without a .txt, .tsv, .text or .npz extension,
    so `sentiment.test.0` and `sentiment.test.1` keep distinct names (`Path.stem` would make both
    `sentiment.test`); standard input is `stdin`."""
    if str(path) == STDIN:
        return "stdin"
    return _safe(path.stem if path.suffix.lower() in NAME_SUFFIXES else path.name)


def _safe(name: str) -> str:
    """A name usable in a split label, a file name and an HDF5 group (no '/', '@', spaces)."""
    cleaned = re.sub(r"[^A-Za-z0-9._+-]+", "_", name).strip("_")
    return cleaned or "data"


def _read_text(path: Path, dataset, limit: int | None = None) -> InputData:
    if dataset.kind != "text":
        raise UsageError(f"{path}: a text file, but the run was trained on images ({dataset.name}); "
                         "give a .npz")
    lines = read_lines(SourceFile(path, display="<stdin>" if str(path) == STDIN else ""), "auto")
    keep = [i for i, text in enumerate(lines.texts) if text][:limit]
    labels = [lines.labels[i] for i in keep] if lines.labelled else None
    return from_texts([lines.texts[i] for i in keep], dataset, data_name(path), labels,
                      np.asarray(keep, dtype=np.int64) + 1, "<stdin>" if str(path) == STDIN else str(path))


def _read_npz(path: Path, limit: int | None = None) -> InputData:
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError) as exc:
        raise DuvaeError(f"{path}: not a readable .npz file ({exc})") from None
    if "images" in arrays:
        images = arrays["images"]
    elif len(arrays) == 1:
        images = next(iter(arrays.values()))
    else:
        raise DuvaeError(f"{path}: no array named `images` (found {', '.join(arrays) or 'none'})")
    labels = arrays.get("labels")
    if labels is not None and labels.shape != (len(images),):
        raise DuvaeError(f"{path}: `labels` of shape {labels.shape}; expected ({len(images)},)")
    return from_images(images[:limit], data_name(path), None if labels is None else labels[:limit], str(path))


def _read_dataset(path: Path, dataset, split: str, limit: int | None = None) -> InputData:
    other = load_dataset(path)
    if split not in other.splits:
        raise UsageError(f"--split {split!r}: {path} has {', '.join(other.splits)}")
    data = other.splits[split]
    data = first_examples(data, min(limit, len(data))) if limit else data
    return convert_split(other, data, dataset, f"{other.name}-{split}", f"{path} ({split})")


def convert_split(other, data, dataset, name: str, source: str) -> InputData:
    """A split of dataset `other` as the run's dataset would hold it: ids kept when both share the
    tokenizer, else decoded to text and tokenized again with the run's."""
    if other.kind != dataset.kind:
        raise UsageError(f"{source}: {other.kind} data, but the run was trained on {dataset.kind} "
                         f"({dataset.name})")
    if other.kind == "image":
        return from_images(data.images, name, data.labels, source)
    if other.vocab == dataset.vocab and other.sentencepiece_model == dataset.sentencepiece_model:
        n_unk = int((data.tokens == UNK_ID).sum())
        return InputData(name, "text", data, source, None, len(data.tokens), n_unk)
    texts = [other.decode(data.sentence(i)) for i in range(len(data))]
    return from_texts(texts, dataset, name, data.labels, None, source)
