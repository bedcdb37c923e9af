"""Evaluation outputs in the run directory: metrics.h5, metrics.csv and the resumable partial results.

- `metrics.h5`: one group per split and checkpoint, `/<split>/<checkpoint>-<sha256[:12]>`, holding the
  per-example arrays, a `per_dim` subgroup and attributes naming every estimator and setting.
  Re-evaluating the same split and checkpoint replaces its group; other groups are kept.
- `metrics.csv`: tidy rows (design.md §4 columns, then what made each number: CSV_COLUMNS). Rows of
  an earlier evaluation with the same run, split, checkpoint hash, seed, K, examples, metric and
  estimator are replaced.
- `metrics.partial/<split>-<key hash>/part-*.npz`: per-example results flushed during evaluation, so
  an interrupted run resumes; deleted once metrics.h5 is written.

Every file is replaced atomically (temp file + rename) under a lock, so concurrent evaluations of
one run neither interleave nor lose rows.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import shutil
import time
from pathlib import Path

import h5py
import numpy as np

from duvae_cli.errors import DuvaeError
from duvae_cli.io import atomic_h5, atomic_path, atomic_write_text, write_error
from duvae_cli.locking import locked_for_update

# design.md §4's tidy columns, then what made each number (docs/metrics.md): the checkpoint and its
# sha256, the split's fingerprint (data/binding.py) and the dataset file's sha256, the number of
# examples evaluated, the MI estimator, the AU threshold and the precision; `note` says why a value
# is empty (not finite). n_samples is K.
CSV_COLUMNS = ("run", "dataset", "model", "split", "metric", "value", "estimator", "n_samples", "seed",
               "checkpoint", "checkpoint_sha256", "split_sha256", "dataset_sha256", "examples", "mi_estimator",
               "au_threshold", "precision", "note")
PART_FIELDS = ("index", "iw_nll", "rec", "kl", "elbo", "n_tokens", "mean", "logvar", "z_sample")
CSV_KEY = ("run", "split", "checkpoint_sha256", "seed", "n_samples", "examples", "metric", "estimator")


def update_metrics_csv(path: Path, rows: list[dict]) -> None:
    """Append `rows`, first dropping earlier rows with the same CSV_KEY. Unknown columns are kept."""
    path = Path(path)
    with locked_for_update(path):
        old, columns = [], list(CSV_COLUMNS)
        if path.exists():
            with open(path, newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                old = list(reader)
                columns += [c for c in reader.fieldnames or [] if c not in columns]
        replaced = _replaced_by(rows)
        kept = [row for row in old if not replaced(row)]
        with atomic_path(path, suffix=".csv.tmp") as tmp:
            with open(tmp, "w", newline="", encoding="utf-8") as handle:
                writer = csv.DictWriter(handle, fieldnames=columns, restval="")
                writer.writeheader()
                writer.writerows(kept + rows)


def _key(row: dict, fields: tuple = CSV_KEY) -> tuple:
    return tuple("" if row.get(k) is None else str(row[k]) for k in fields)


def _replaced_by(new_rows: list[dict]):
    """A test for existing rows: same CSV_KEY as a new row. A row written before the `examples`
    column existed has it empty; it is replaced by a new evaluation that matches it otherwise."""
    loose_fields = tuple(k for k in CSV_KEY if k != "examples")
    exact = {_key(r) for r in new_rows}
    loose = {_key(r, loose_fields) for r in new_rows}
    return lambda row: _key(row) in exact or (row.get("examples") in (None, "") and _key(row, loose_fields) in loose)


def write_metrics_h5(path: Path, group: str, per_example: dict, per_dim: dict, attrs: dict) -> None:
    """Write (or replace) one evaluation group. The file is rebuilt in memory, copying the old one's
    other groups, written beside it and renamed over it: space of replaced groups is reclaimed,
    nothing half-written."""
    path = Path(path)
    with locked_for_update(path), atomic_h5(path) as out:  # built in memory: see io.atomic_h5
        if path.exists():
            with h5py.File(path, "r") as old:
                _copy_except(old, out, group)
        node = out.require_group(group)
        for name, array in per_example.items():
            node.create_dataset(name, data=array, compression="gzip", shuffle=True)
        dims = node.create_group("per_dim")
        for name, array in per_dim.items():
            dims.create_dataset(name, data=array)
        for key, value in attrs.items():
            node.attrs[key] = value


def _copy_except(source: h5py.Group, target: h5py.Group, skip: str) -> None:
    """Copy every group of `source` into `target` except the path `skip` (and keep its siblings)."""
    for name, item in source.items():
        path = f"{source.name.rstrip('/')}/{name}".lstrip("/")
        if path == skip:
            continue
        if skip.startswith(path + "/") and isinstance(item, h5py.Group):
            _copy_except(item, target.require_group(name), skip)
        else:
            source.copy(item, target, name=name)
    for key, value in source.attrs.items():
        target.attrs[key] = value


class PartialResults:
    """Per-example results on disk while an evaluation runs, one atomic .npz per flush.

    `key` names everything the per-example numbers depend on (split, checkpoint, data, seed, K);
    results are only resumed into an evaluation with the same key."""

    def __init__(self, root: Path, key: dict, flush_seconds: float = 10.0):
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        self.directory = Path(root) / f"{key.get('split', 'split')}-{digest}"
        self.key, self.flush_seconds = key, flush_seconds
        self.pending: list[dict] = []
        self.last_flush = time.monotonic()
        self.count = len(list(self.directory.glob("part-*.npz"))) if self.directory.exists() else 0

    def load(self) -> tuple[list[dict], int]:
        """The saved parts (dicts of arrays, with "index"), and how many files were unreadable or
        inconsistent (ignored: their examples are evaluated again)."""
        parts, bad, shapes = [], 0, {}
        for path in sorted(self.directory.glob("part-*.npz")) if self.directory.exists() else []:
            try:
                with np.load(path, allow_pickle=False) as data:
                    part = {name: data[name] for name in data.files}
            except (OSError, ValueError, KeyError, EOFError):
                bad += 1
                continue
            if self._consistent(part, shapes):
                parts.append(part)
            else:
                bad += 1
        return parts, bad

    def _consistent(self, part: dict, shapes: dict) -> bool:
        """Every field present, one row per index, indices inside the evaluated examples, and each
        field's row shape the same as in the parts before (a tampered or foreign file fails)."""
        index = part.get("index")
        if any(name not in part for name in PART_FIELDS) or index.ndim != 1 or index.dtype.kind not in "iu":
            return False
        n = self.key.get("n_examples")
        if len(index) and (index.min() < 0 or (n is not None and index.max() >= n)):
            return False
        for name, array in part.items():
            if array.ndim == 0 or len(array) != len(index) or shapes.setdefault(name, array.shape[1:]) != array.shape[1:]:
                return False
        return True

    def add(self, part: dict) -> None:
        self.pending.append(part)
        if time.monotonic() - self.last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        if not self.directory.exists():
            self._start()
        merged = {name: np.concatenate([p[name] for p in self.pending]) for name in self.pending[0]}
        try:
            with atomic_path(self.directory / f"part-{self.count:06d}.npz", suffix=".npz") as tmp:
                with open(tmp, "wb") as handle:
                    np.savez(handle, **merged)
        except DuvaeError:  # a full disk before the first part: no empty folder is left
            if self.count == 0:
                self.discard()
            raise
        self.count += 1
        self.pending, self.last_flush = [], time.monotonic()

    def _start(self) -> None:
        """The folder and its key.json; on a full or read-only disk nothing of it is left behind."""
        try:
            self.directory.mkdir(parents=True)
            atomic_write_text(self.directory / "key.json", json.dumps(self.key, indent=2, sort_keys=True))
        except OSError as exc:
            self.discard()
            raise write_error(self.directory, exc) from None
        except DuvaeError:
            self.discard()
            raise

    def discard(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.directory.parent.rmdir()  # only if no other evaluation left parts there
