"""Labelled new data for `duvae classify RUN --data ...`: what its `--data` values name, read with the
run's tokenizer, as the train, valid and test data of the probes (docs/use.md).

Three forms (not mixed):
- one labelled dataset.h5: its train/valid/test splits (and official subsets);
- `train=FILE valid=FILE test=FILE`: three LABEL<TAB> text files (or labelled .npz images);
- a pool of labelled files, split here: `FILE=LABEL` (every example of FILE has class LABEL, e.g.
  one file per sentiment; plain text lines or a .npz), `FILE` (LABEL<TAB> lines, or a .npz with
  `labels`), `-` for LABEL<TAB> lines on stdin (`-=LABEL`: plain lines of one class). The pooled
  examples are split class by class with `--seed`: POOL_TEST of each class for test, POOL_VALID for
  valid (at least one each), the rest for train; a class needs at least 3 examples.
A ROLE=... spec is a role when ROLE is train, valid or test; `FILE=LABEL` needs an integer LABEL.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from duvae_cli.data.store import SPLITS, load_dataset
from duvae_cli.data.text import MAX_LABEL, STDIN, SourceFile, read_lines
from duvae_cli.errors import DuvaeError, UsageError
from duvae_cli.use.inputs import InputData, convert_split, data_name, from_images, from_texts, read_input

POOL_TEST, POOL_VALID = 0.2, 0.1  # shares of each class's pooled examples held out for test and valid
MIN_PER_CLASS = 3  # one for each of train, valid and test


@dataclass(frozen=True)
class Pooled:
    """A pool's examples, in file order: texts (text runs) or images, their labels and where they came from."""

    texts: list | None
    images: np.ndarray | None
    labels: np.ndarray
    names: list[str]  # the files' data names, for the pool's name


def parse_specs(specs: list[str]) -> tuple[str, object]:
    """("dataset", Path) | ("roles", {role: Path}) | ("pool", [(Path, label or None)])."""
    if len(specs) == 1 and "=" not in specs[0] and specs[0].lower().endswith(".h5"):
        return "dataset", Path(specs[0])
    roles, pool = {}, []
    for spec in specs:
        left, sep, right = spec.rpartition("=") if "=" in spec else ("", "", spec)
        if sep and spec.partition("=")[0] in SPLITS and not Path(spec).exists():
            role, _, path = spec.partition("=")
            if role in roles or not path:
                raise UsageError(f"--data {spec!r}: {'given twice' if role in roles else 'FILE missing'}")
            roles[role] = Path(path)
        elif sep and not Path(spec).exists():
            pool.append((Path(left), _label(spec, right)))
        else:
            pool.append((Path(spec), None))
    if roles and pool:
        raise UsageError("--data: give train=FILE valid=FILE test=FILE, or FILE=LABEL / labelled FILEs to be "
                         "split here, not both")
    if roles and len(roles) < len(SPLITS):
        missing = [f"{r}=FILE" for r in SPLITS if r not in roles]
        raise UsageError(f"--data: missing {', '.join(missing)} (the probe trains on train, stops early on valid "
                         "and is scored on test)")
    if [p for p, _ in pool].count(Path(STDIN)) > 1:
        raise UsageError("--data -: standard input can be read once")
    return ("roles", roles) if roles else ("pool", pool)


def _label(spec: str, text: str) -> int:
    if not text.strip().isdigit() or int(text) > MAX_LABEL:
        raise UsageError(f"--data {spec!r}: LABEL {text!r} is not a class id 0..{MAX_LABEL:,} (FILE=LABEL; "
                         "train=FILE, valid=FILE, test=FILE name roles)")
    return int(text)


def read_labelled(specs: list[str], dataset, seed: int) -> tuple[dict[str, InputData], dict[str, InputData]]:
    """(splits, subsets) of labelled new data, tokenized with the run's tokenizer."""
    form, value = parse_specs(specs)
    subsets: dict[str, InputData] = {}
    if form == "dataset":
        other = load_dataset(value)
        missing = [s for s in SPLITS if s not in other.splits]
        if missing:
            raise DuvaeError(f"{value}: no {', '.join(missing)} split; the probe needs train, valid and test")
        splits = {s: convert_split(other, other.splits[s], dataset, f"{other.name}-{s}", f"{value} ({s})")
                  for s in SPLITS}
        subsets = {k: convert_split(other, v, dataset, f"{other.name}-{k}", f"{value} (subsets/{k})")
                   for k, v in other.subsets.items()}
    elif form == "roles":
        splits = {role: read_input(path, dataset) for role, path in value.items()}
    else:
        splits = split_pool(read_pool(value, dataset), dataset, seed)
    for role, data in splits.items():
        if data.split.labels is None:
            raise DuvaeError(f"{data.source}: no labels; the {role} data must be LABEL<TAB>sentence lines "
                             "(or give FILE=LABEL)")
    return splits, subsets


def read_pool(files: list[tuple[Path, int | None]], dataset) -> Pooled:
    """Every example of the pool's files, with its label."""
    texts, images, labels = [], [], []
    for path, label in files:
        if dataset.kind == "image":
            data = read_input(path, dataset)
            images.append(data.split.images)
            labels.append(_labels_of(data.split.labels, label, len(data), path))
            continue
        if str(path) != STDIN and not path.is_file():
            raise UsageError(f"{path}: no such file")
        lines = read_lines(SourceFile(path, label, "<stdin>" if str(path) == STDIN else ""),
                           "none" if label is not None else "auto")
        keep = [i for i, text in enumerate(lines.texts) if text]
        texts += [lines.texts[i] for i in keep]
        labels.append(_labels_of(None if not lines.labelled else [lines.labels[i] for i in keep], label,
                                 len(keep), path))
    return Pooled(texts if dataset.kind == "text" else None,
                  np.concatenate(images) if images else None, np.concatenate(labels),
                  [data_name(path) for path, _ in files])


def _labels_of(given, label: int | None, n: int, path: Path) -> np.ndarray:
    if label is not None:
        return np.full(n, label, dtype=np.int64)
    if given is None:
        raise DuvaeError(f"{path}: no labels; give {path}=LABEL (one class per file) or LABEL<TAB>sentence lines")
    return np.asarray(given, dtype=np.int64)


def split_pool(pool: Pooled, dataset, seed: int) -> dict[str, InputData]:
    """The pool split class by class into train, valid and test (see the module docstring)."""
    rng, roles = np.random.default_rng(seed), {role: [] for role in SPLITS}
    for label in np.unique(pool.labels):
        rows = rng.permutation(np.flatnonzero(pool.labels == label))
        if len(rows) < MIN_PER_CLASS:
            raise DuvaeError(f"--data: class {label} has {len(rows)} example(s); each class needs at least "
                             f"{MIN_PER_CLASS} (train, valid and test)")
        n_test = max(1, round(POOL_TEST * len(rows)))
        n_valid = max(1, min(round(POOL_VALID * len(rows)), len(rows) - n_test - 1))
        roles["test"].append(rows[:n_test])
        roles["valid"].append(rows[n_test:n_test + n_valid])
        roles["train"].append(rows[n_test + n_valid:])
    shown = "+".join(pool.names[:3]) + ("+more" if len(pool.names) > 3 else "")
    out = {}
    for role, parts in roles.items():
        rows = np.sort(np.concatenate(parts))
        name, source = f"{shown}-{role}", f"{', '.join(pool.names)} ({role} part, seed {seed})"
        if pool.texts is not None:
            out[role] = from_texts([pool.texts[i] for i in rows], dataset, name, pool.labels[rows], None, source)
        else:
            out[role] = from_images(pool.images[rows], name, pool.labels[rows], source)
    return out
