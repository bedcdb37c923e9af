"""Checkpoints and weights as safetensors files: nothing duvae reads is unpickled (design.md §7).

    save_checkpoint(path, payload)           # atomically: temp file, fsync, rename
    payload = load_checkpoint(path, device)  # the same dict back, tensors bit for bit
    payload, sha256 = load_checkpoint_hashed(path, device)

A checkpoint is ONE file, so that it is replaced as a whole (a reader sees the old file or the new
one, never a mix). The payload (train/loop.py `_snapshot`: model and optimizer state, the LoopState,
the RNG states, the config, an fp16 GradScaler state) is a tree of dicts, lists and tuples whose
leaves are tensors, numbers, strings, booleans and None. Every tensor goes into the safetensors body
under its path in the tree ("model/encoder.embed.weight", "optimizer/state/0/exp_avg", "rng/torch");
the tree itself is JSON in the header's metadata (key "duvae"), each tensor replaced by
{"$tensor": name}. What JSON cannot say exactly is tagged: a non-finite float as {"$float": "inf"}
(LoopState.best_loss starts at inf; a history row holds NaN), a tuple as {"$tuple": [...]}, a dict
whose keys are not all strings (the optimizer's per-parameter state, keyed 0, 1, ...) as
{"$items": [[key, value], ...]}. Finite floats are written with Python's repr, which reads back to
the same double, and RNG states are uint8 tensors: a resumed run is bit-identical.

The same reader checks every file before it is believed (docs/reliability.md): a pickle or zip
(`torch.save`) file is refused in one line, as is any file that is not safetensors; the header's
JSON is parsed with the standard library only.
"""

from __future__ import annotations

import json
import math
import os
import struct
from pathlib import Path

import numpy as np
import torch

from duvae_cli.errors import DuvaeError
from duvae_cli.io import atomic_path, sha256_bytes, write_error
from duvae_cli.runs.trust import check_regular, pickle_kind

CHECKPOINT_FORMAT = "duvae-checkpoint/1"
WEIGHTS_FORMAT = "duvae-weights/1"
MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit on the JSON header
TAGS = ("$tensor", "$float", "$tuple", "$items")


# ------------------------------------------------------------------------------ the JSON tree ---

def _encode(value, path: str, tensors: dict):
    """`value` as JSON; its tensors added to `tensors` under their paths."""
    if torch.is_tensor(value):
        name = path or "tensor"
        if name in tensors:
            raise ValueError(f"two tensors at {name!r}")
        tensors[name] = value
        return {"$tensor": name}
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": repr(value)}  # 'inf', '-inf', 'nan'
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, tuple):
        return {"$tuple": [_encode(v, f"{path}/{i}", tensors) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, f"{path}/{i}", tensors) for i, v in enumerate(value)]
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in value):
            return {k: _encode(v, f"{path}/{k}" if path else k, tensors) for k, v in value.items()}
        return {"$items": [[_encode(k, "", {}), _encode(v, f"{path}/{k}", tensors)] for k, v in value.items()]}
    raise TypeError(f"cannot store a {type(value).__name__} at {path or 'the top'} in a checkpoint")


def _decode(value, tensors: dict, device, cpu_only: bool = False):
    """The tree back; tensors moved to `device` (RNG states stay on the CPU, where torch reads them)."""
    if isinstance(value, list):
        return [_decode(v, tensors, device, cpu_only) for v in value]
    if not isinstance(value, dict):
        return value
    tag = next((t for t in TAGS if t in value), None)
    if tag is None:
        return {k: _decode(v, tensors, device, cpu_only or k == "rng") for k, v in value.items()}
    if len(value) != 1:
        raise ValueError(f"{tag} entry with other keys")
    inner = value[tag]
    if tag == "$tensor":
        return tensors[inner] if cpu_only else tensors[inner].to(device)
    if tag == "$float":
        if inner not in ("inf", "-inf", "nan"):
            raise ValueError(f"$float {inner!r}")
        return float(inner)
    if tag == "$tuple":
        return tuple(_decode(v, tensors, device, cpu_only) for v in inner)
    return {_decode(k, tensors, device): _decode(v, tensors, device, cpu_only) for k, v in inner}


# ---------------------------------------------------------------------- safetensors, checked ---

def _storable(tensors: dict) -> dict:
    """CPU, contiguous, and no two sharing memory (safetensors refuses shared or strided tensors)."""
    out, seen = {}, set()
    for name, tensor in tensors.items():
        tensor = tensor.detach().cpu()
        pointer = tensor.untyped_storage().data_ptr() if tensor.numel() else None
        if not tensor.is_contiguous() or (pointer is not None and pointer in seen):
            tensor = tensor.contiguous().clone()
        seen.add(tensor.untyped_storage().data_ptr() if tensor.numel() else None)
        out[name] = tensor
    return out


def to_bytes(tensors: dict, metadata: dict[str, str]) -> bytes:
    from safetensors.torch import save

    return canonical(save(_storable(tensors), metadata={"format": "pt", **metadata}))


def canonical(data: bytes) -> bytes:
    """The same safetensors file with its JSON header's keys sorted. safetensors writes the metadata
    in a random order (a hash map, seeded per call), so one payload gave different bytes, and a
    checkpoint's sha256 must depend on its content alone (metrics.csv rows name it; migrate maps old
    shas to new ones). The tensor data is unchanged; its offsets are relative to the header's end."""
    (size,) = struct.unpack("<Q", data[:8])
    text = json.dumps(json.loads(data[8:8 + size]), separators=(",", ":"), sort_keys=True).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-aligned, as safetensors writes it
    return struct.pack("<Q", len(text)) + text + data[8 + size:]


def write_file(path: Path, data: bytes) -> None:
    """`data` to `path` atomically (the previous file stays whole if the write fails)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        try:
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise write_error(path, exc) from None


def header_of(data: bytes, path: Path) -> dict:
    """The safetensors header of `data` (the file at `path`), checked; DuvaeError in one line for a
    pickle, a zip or anything else that is not a safetensors file."""
    size = struct.unpack("<Q", data[:8])[0] if len(data) >= 8 else -1
    if not (2 <= size <= min(MAX_HEADER, len(data) - 8)) or data[8:9] != b"{":
        raise DuvaeError(f"{path}: {_what_it_is(data)}")
    try:
        header = json.loads(data[8:8 + size].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        header = None
    if not isinstance(header, dict):
        raise DuvaeError(f"{path}: damaged safetensors header (not a JSON object)")
    return header


def _what_it_is(data: bytes) -> str:
    kind = pickle_kind(data)
    if kind:
        return (f"a {kind}, not a safetensors file; duvae never unpickles what it reads (a run made "
                "by an earlier duvae: convert it with `duvae migrate RUN`; docs/reliability.md)")
    return "not a safetensors file (empty, truncated or another format)"


def from_bytes(data: bytes, path: Path, expected: str) -> tuple[dict, dict]:
    """(tensors on the CPU, metadata) of the safetensors bytes `data`, whose duvae format must be
    `expected`; DuvaeError naming `path` otherwise."""
    from safetensors.torch import load

    metadata = header_of(data, path).get("__metadata__") or {}
    if not isinstance(metadata, dict) or metadata.get("duvae_format") != expected:
        found = metadata.get("duvae_format") if isinstance(metadata, dict) else None
        raise DuvaeError(f"{path}: not a {expected} file (its header says {found!r})")
    try:
        return load(data), metadata
    except Exception as exc:  # noqa: BLE001 - safetensors' own checks of offsets and dtypes
        raise DuvaeError(f"{path}: damaged safetensors file ({str(exc).splitlines()[0][:120]})") from None


# --------------------------------------------------------------------------------- checkpoints ---

def checkpoint_bytes(payload: dict) -> bytes:
    tensors: dict = {}
    tree = _encode(payload, "", tensors)
    return to_bytes(tensors, {"duvae_format": CHECKPOINT_FORMAT,
                              "duvae": json.dumps(tree, allow_nan=False, separators=(",", ":"))})


def save_checkpoint(path: Path, payload: dict) -> None:
    """Write `payload` to `path` (RUN/checkpoints/<name>.safetensors) atomically."""
    write_file(path, checkpoint_bytes(payload))


def read_checkpoint(data: bytes, path: Path, device="cpu") -> dict:
    """The payload stored in the bytes `data` of the checkpoint `path`."""
    tensors, metadata = from_bytes(data, path, CHECKPOINT_FORMAT)
    try:
        payload = _decode(json.loads(metadata["duvae"]), tensors, device)
    except (KeyError, TypeError, ValueError, RecursionError) as exc:
        raise DuvaeError(f"{path}: damaged duvae checkpoint ({type(exc).__name__}: {exc})"[:300]) from None
    if not isinstance(payload, dict):
        raise DuvaeError(f"{path}: damaged duvae checkpoint (expected a JSON object)")
    return payload


def read_bytes(path: Path) -> bytes:
    """A run's file, read once (its sha256 is of these very bytes); one line when it cannot be."""
    path = Path(path)
    try:
        check_regular(path)
        return path.read_bytes()
    except FileNotFoundError:
        raise DuvaeError(f"{path}: no such checkpoint") from None
    except OSError as exc:  # a directory, no permission, an I/O error
        raise DuvaeError(f"{path}: not a readable duvae checkpoint ({type(exc).__name__})") from None


def load_checkpoint(path: Path, device="cpu") -> dict:
    return read_checkpoint(read_bytes(path), Path(path), device)


def load_checkpoint_hashed(path: Path, device="cpu") -> tuple[dict, str]:
    """The checkpoint and the sha256 of exactly the bytes it was loaded from, so that numbers are
    never filed under a newer file that replaced it while it was read (tables/fresh.py)."""
    data = read_bytes(path)
    return read_checkpoint(data, Path(path), device), sha256_bytes(data)


# ------------------------------------------------------------------------------ weights only ---

def weights_bytes(state: dict, metadata: dict[str, str]) -> bytes:
    """A model's state dict with its plain names (what other safetensors tools expect)."""
    return to_bytes(dict(state), {"duvae_format": WEIGHTS_FORMAT, **metadata})


def read_weights(data: bytes, path: Path, device="cpu") -> tuple[dict, dict]:
    tensors, metadata = from_bytes(data, path, WEIGHTS_FORMAT)
    return {k: v.to(device) for k, v in tensors.items()}, metadata
