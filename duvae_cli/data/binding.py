"""A run is bound to its data: what defines its inputs is stored at train time and checked wherever
the run meets a dataset again (evaluate, classify, visualize, resume, every torchrun rank).

    binding = describe(dataset)              # at train time; write(run_dir, dataset) stores it
    notes = check(run_dir, dataset)          # later: DuvaeError if the input format differs,
                                             # else one note per changed or added split

Two levels (docs/reliability.md):

- the *input format*: kind; text: tokenizer, the vocabulary itself (sha256 of its tokens in id
  order, or of the sentencepiece model) and the special ids; images: image shape and binarisation.
  A difference means the model would read other symbols: `check` refuses, naming the run, the
  dataset file and what differs.
- the *splits*: a sha256 fingerprint of each split's arrays (`split_fingerprint`). A changed or
  added split with the same input format is allowed (e.g. a test file obtained later); `check`
  returns a one-line note, and evaluation writes the fingerprint next to every number.

`RUN/binding.json` holds the binding plus, for diagnostics, the vocabulary's tokens (or the
sentencepiece model, base64). Runs trained before this file existed are checked by the whole
file's sha256 (manifest.json `data_sha256`) only.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import numpy as np

from duvae_cli.errors import DuvaeError

FILENAME = "binding.json"
RESUME_SPLITS = ("train", "valid")  # a resumed run must see exactly the data it started on


def split_fingerprint(split) -> str:
    """sha256 over a split's arrays (name, dtype, shape, bytes; names in order), independent of the
    HDF5 file's layout, of other splits and of the dataset's name."""
    digest = hashlib.sha256()
    for name in sorted(vars(split)):
        value = getattr(split, name)
        if isinstance(value, np.ndarray):
            array = np.ascontiguousarray(value)
            digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
            digest.update(array.tobytes())
        elif isinstance(value, (bool, int, str)):  # e.g. an image split's `binarized`
            digest.update(f"{name}={value}|".encode())
    return digest.hexdigest()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def input_format(dataset) -> dict:
    """What a model reads: changing any of it changes what the weights mean."""
    attrs = dataset.attrs
    if dataset.kind == "image":
        shapes = sorted({tuple(s.images.shape[1:]) for s in dataset.splits.values()})
        binarized = sorted({bool(s.binarized) for s in dataset.splits.values()})
        return {"kind": "image", "image_shape": list(shapes[0]) if len(shapes) == 1 else [list(s) for s in shapes],
                "binarized": binarized[0] if len(binarized) == 1 else binarized}
    model = getattr(dataset, "sentencepiece_model", None)
    return {"kind": "text", "tokenizer": str(attrs.get("tokenizer")), "vocab_size": len(dataset.vocab),
            "vocab_sha256": _sha("\n".join(dataset.vocab).encode("utf-8")),
            "sentencepiece_sha256": None if model is None else _sha(model),
            "special_ids": {k: int(attrs[k]) for k in ("pad_id", "bos_id", "eos_id", "unk_id") if k in attrs}}


def describe(dataset) -> dict:
    """The binding of `dataset`: its input format and the fingerprint of each split."""
    return {"format": input_format(dataset),
            "splits": {name: split_fingerprint(split) for name, split in dataset.splits.items()},
            "dataset_sha256": dataset.sha256, "dataset_path": str(Path(dataset.path).resolve())}


def write(run_dir: Path, dataset, binding: dict | None = None) -> dict:
    """Store the binding of `dataset` in RUN/binding.json (atomically); returns it."""
    from duvae_cli.io import atomic_write_text

    binding = binding or describe(dataset)
    atomic_write_text(Path(run_dir) / FILENAME, json.dumps(stored(dataset, binding), indent=1, sort_keys=True) + "\n")
    return binding


def stored(dataset, binding: dict | None = None) -> dict:
    """What RUN/binding.json holds: the binding plus the vocabulary (or the sentencepiece model)."""
    out = dict(binding or describe(dataset))
    if dataset.kind == "text":
        out["vocab"] = list(dataset.vocab)
        model = getattr(dataset, "sentencepiece_model", None)
        if model is not None:
            out["sentencepiece_model_b64"] = base64.b64encode(model).decode("ascii")
    return out


def read(run_dir: Path) -> dict | None:
    """RUN/binding.json, or None for a run trained before bindings existed."""
    path = Path(run_dir) / FILENAME
    if not path.exists():
        return None
    try:
        bound = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DuvaeError(f"{path}: unreadable run binding ({type(exc).__name__}: {exc})") from None
    if not (isinstance(bound, dict) and isinstance(bound.get("format"), dict) and "kind" in bound["format"]
            and isinstance(bound.get("splits"), dict)):  # emptied ({}) or edited: nothing to check against
        raise DuvaeError(f"{path}: damaged run binding (expected a JSON object with its format and splits); "
                         "restore the file from a copy of the run")
    return bound


def check(run_dir: Path, dataset, bound: dict | None = None, exact: tuple[str, ...] = ()) -> list[str]:
    """Check `dataset` against the run's binding (`bound`, else RUN/binding.json).

    Raises DuvaeError (one line: run, dataset file, what differs) if the input format differs, or
    if a split named in `exact` changed or is missing. Returns one note per other changed or added
    split."""
    run_dir = Path(run_dir)
    bound = bound if bound is not None else read(run_dir)
    where = f"run {run_dir} was trained on other data than {dataset.path}"
    if bound is None:
        return _check_legacy(run_dir, dataset, where)
    now = describe(dataset)
    difference = _format_difference(bound, now["format"], dataset)
    if difference:
        raise DuvaeError(f"{where}: {difference}")
    notes = []
    for name in sorted(set(bound["splits"]) | set(now["splits"])):
        old, new = bound["splits"].get(name), now["splits"].get(name)
        if old == new:
            continue
        change = ("removed" if new is None else "added" if old is None
                  else f"changed (fingerprint {old[:12]} -> {new[:12]})")
        if name in exact:
            raise DuvaeError(f"{where}: split {name} {change}; resuming needs the same {name} data")
        if new is not None:
            notes.append(f"note: {dataset.path}: split {name} {change} since run {run_dir.name} was "
                         f"trained; same vocabulary, numbers are of the new data")
    return notes


def fingerprint_of(dataset, split: str) -> str:
    """The fingerprint written next to every number computed on `split`."""
    return split_fingerprint(dataset.splits[split])


def _format_difference(bound: dict, now: dict, dataset) -> str:
    """'' when the formats agree, else what differs, in words."""
    old = bound["format"]
    if old == now:
        return ""
    if old.get("kind") != now.get("kind"):
        return f"kind {old.get('kind')} vs {now.get('kind')}"
    for key in ("tokenizer", "special_ids", "image_shape", "binarized", "sentencepiece_sha256"):
        if old.get(key) != now.get(key):
            return f"{key.replace('_', ' ')} {old.get(key)} in the run, {now.get(key)} in the dataset"
    if old.get("vocab_size") != now.get("vocab_size"):
        return f"vocabulary of {old.get('vocab_size'):,} tokens in the run, {now.get('vocab_size'):,} in the dataset"
    return "vocabulary differs (" + _first_vocab_difference(bound.get("vocab"), dataset.vocab) + ")"


def _first_vocab_difference(old: list[str] | None, new: list[str]) -> str:
    if old is None:
        return "same size, other tokens"
    moved = [i for i, (a, b) in enumerate(zip(old, new)) if a != b]
    i = moved[0]
    return f"same size, {len(moved):,} ids map to other tokens; first: id {i} is {old[i]!r} in the run, {new[i]!r} now"


def _check_legacy(run_dir: Path, dataset, where: str) -> list[str]:
    manifest = run_dir / "manifest.json"
    try:
        info = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []  # nothing to compare with; read_config/load_trained name the broken file
    if info.get("data_sha256") not in (None, dataset.sha256):
        raise DuvaeError(f"{where}: the file's sha256 differs from {manifest.name}'s data_sha256 and the "
                         f"run has no {FILENAME} to tell whether the vocabulary is the same")
    return []
