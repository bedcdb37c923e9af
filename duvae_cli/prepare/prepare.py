"""`duvae prepare NAME`: find the raw files, run the dataset's recipe, write OUT/<name>/dataset.h5.

Everything is read, checked and built in memory before the output is opened, so bad input never
leaves a file behind; the file itself is written to a temp name and renamed when complete.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from duvae_cli.prepare.download import resolve_source
from duvae_cli.prepare.options import PrepareOptions, check_options
from duvae_cli.prepare.registry import get_spec
from duvae_cli.data.store import UNK_ID, Built, SplitData, dataset_path, write_dataset
from duvae_cli import locking
from duvae_cli.errors import DuvaeError, UsageError
from duvae_cli.interrupt import Interrupted
from duvae_cli.io import sha256_file
from duvae_cli.progress import SILENT, Reporter

__all__ = ["PrepareOptions", "PrepareSummary", "prepare_dataset"]


def prepare_dataset(name: str, options: PrepareOptions | None = None, reporter: Reporter = SILENT):
    """Prepare dataset `name` (a key of registry.DATASETS) and return its summary."""
    options = options or PrepareOptions()
    spec = get_spec(name)
    check_options(options, spec.kind, name)
    out_name = options.as_name or name
    path = dataset_path(out_name, options.out)
    try:  # one writer per output dataset; a second `prepare` of it fails at once naming the first
        with locking.hold(Path(options.out) / f".{out_name}.lock", f"dataset {path}"):
            return _prepare(name, spec, options, out_name, path, reporter)
    except Interrupted:
        raise Interrupted(f"interrupted; {path} {'left as it was' if path.exists() else 'not written'}") from None


def _prepare(name: str, spec, options: PrepareOptions, out_name: str, path: Path, reporter: Reporter):
    if path.is_dir():  # before the work: --force never replaces a directory
        raise DuvaeError(f"{path}: a directory is where the dataset file should be; remove it or choose "
                         "another --out or --as")
    if path.exists() and not options.force:
        raise UsageError(f"{path} already exists; pass --force to replace it")
    if options.source is not None and name == "synthetic":
        raise UsageError("--source does not apply to synthetic (it is generated)")
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="duvae-prepare-") as work:
        source, origin = None, None
        if name != "synthetic" and (name != "text" or options.source is not None):
            source, origin = resolve_source(spec, options.source, Path(work), reporter)
        built = spec.build(spec, source, options, reporter)
    if origin:
        built.notes.insert(0, origin)
    built.attrs.update(recipe=name, seed=options.seed)
    _write(path, out_name, built)
    return PrepareSummary.of(out_name, name, path, built, time.monotonic() - start)


def _write(path: Path, name: str, built: Built) -> None:
    """Write, removing the dataset's folder again if it was created here and the write failed."""
    created = not path.parent.exists()
    try:
        write_dataset(path, name, built)
    except BaseException:
        if created and path.parent.is_dir() and not any(path.parent.iterdir()):
            path.parent.rmdir()
        raise


# -------------------------------------------------------------------------------------- summary ---

@dataclass
class PrepareSummary:
    """What `duvae prepare` prints: a table (title/columns/rows) or, with --json, `to_dict()`."""

    name: str
    dataset: str
    kind: str
    path: Path
    sha256: str
    tokenizer: str | None
    vocab_size: int | None
    num_labels: int
    seconds: float
    splits: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, name: str, dataset: str, path: Path, built: Built, seconds: float) -> "PrepareSummary":
        groups = [*built.splits.items(), *((f"subsets/{k}", v) for k, v in built.subsets.items())]
        return cls(name=name, dataset=dataset, kind=built.kind, path=path, sha256=sha256_file(path),
                   tokenizer=built.tokenizer, vocab_size=len(built.vocab) if built.vocab else None,
                   num_labels=built.num_labels, seconds=round(seconds, 2),
                   splits=[_split_record(split, data) for split, data in groups], notes=list(built.notes))

    def title(self) -> str:
        vocab = f", vocabulary {self.vocab_size:,} ({self.tokenizer})" if self.vocab_size else ""
        return f"{self.name}{vocab}, {self.seconds:.1f} s"

    def columns(self) -> list[str]:
        if self.kind == "text":
            return ["split", "examples", "tokens", "<unk>", "labels", "dropped"]
        return ["split", "images", "pixels", "labels"]

    def rows(self) -> list[list[object]]:
        rows = []
        for s in self.splits:
            labels = _label_text(s["label_counts"])
            if self.kind == "text":
                dropped = ", ".join(f"{n} {why}" for why, n in s["dropped"].items() if n) or "0"
                rows.append([s["split"], f"{s['examples']:,}", f"{s['tokens']:,}", f"{s['unk']:,}", labels,
                             dropped])
            else:
                rows.append([s["split"], f"{s['examples']:,}", "0/1" if s["binarized"] else "grey 0..255", labels])
        return rows

    def lines(self) -> list[str]:
        """The text under the table: where each split came from, then the notes."""
        return [f"written: {self.path} (sha256 {self.sha256[:12]}...)",
                *(f"{s['split']}: {s['source']}" for s in self.splits), *(f"note: {n}" for n in self.notes)]

    def to_dict(self) -> dict:
        return {"name": self.name, "dataset": self.dataset, "kind": self.kind, "path": str(self.path),
                "sha256": self.sha256, "tokenizer": self.tokenizer, "vocab_size": self.vocab_size,
                "num_labels": self.num_labels, "seconds": self.seconds, "splits": self.splits,
                "notes": self.notes}


def _split_record(split: str, data: SplitData) -> dict:
    arrays = data.arrays
    labels = arrays.get("labels")
    counts = None if labels is None else {int(k): int(v) for k, v in sorted(Counter(labels.tolist()).items())}
    record = {"split": split, "source": data.source, "label_counts": counts}
    if "tokens" in arrays:
        record.update(examples=len(arrays["offsets"]) - 1, tokens=int(len(arrays["tokens"])),
                      unk=int(np.count_nonzero(arrays["tokens"] == UNK_ID)), dropped=dict(data.dropped))
    else:
        record.update(examples=int(len(arrays["images"])), binarized=bool(data.attrs.get("binarized")))
    return record


def _label_text(counts: dict | None) -> str:
    if not counts:
        return "-"
    if len(counts) > 3:  # keep the table narrow; --json has every count
        low, high = min(counts.values()), max(counts.values())
        return f"{len(counts):,} classes, {low:,} each" if low == high else \
            f"{len(counts):,} classes, {low:,}-{high:,} each"
    return " ".join(f"{k}:{v}" for k, v in counts.items())
