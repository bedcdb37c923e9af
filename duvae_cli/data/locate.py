"""Where a run's dataset is now: the path recorded at training time, or the same data elsewhere.

A run records the absolute path of its dataset (manifest.json `data_path`). A run copied or moved to
another machine or folder finds that path gone; `run_dataset` then looks for the same dataset name
(NAME/dataset.h5) under the data roots, in order: `--data-root`, the run's `data_root` config field,
`data/` (relative ones are relative to the current directory), and accepts a file only when it holds
the same data: the run's binding (its input format and every recorded split's fingerprint,
data/binding.py; a run older than bindings: the file's sha256). Nothing is guessed: a file of that
name with other data is refused, and the one line says what was looked for and where.
"""

from __future__ import annotations

import json
from pathlib import Path

from duvae_cli.data import binding
from duvae_cli.data.store import dataset_path, load_dataset
from duvae_cli.errors import DuvaeError


def data_roots(*roots: str | Path | None) -> list[Path]:
    """The roots to search, in order, without repeats (None: not given), ending with `data`."""
    out: list[Path] = []
    for root in (*roots, "data"):
        if root is not None and Path(root).resolve() not in {p.resolve() for p in out}:
            out.append(Path(root))
    return out


def run_dataset(run_dir: Path, recorded: str | Path | None, name: str, roots: list[Path],
                hint: str = "--data-root DIR searches DIR/{name}/dataset.h5 too"):
    """(dataset, note): the run's dataset and, when it was found under a data root instead of at the
    recorded path, the line that says so ("data: using data/NAME/dataset.h5 (same fingerprint as
    recorded)"), else None. DuvaeError when neither holds the run's data; it ends with `hint`."""
    if recorded and Path(recorded).exists():  # as before: binding.check, where the run meets it, reports changes
        return load_dataset(Path(recorded)), None
    wanted, looked = _recorded_identity(run_dir), []
    for root in roots:
        candidate = dataset_path(name, root)
        if not candidate.exists():
            looked.append(f"{candidate} (absent)")
            continue
        dataset = load_dataset(candidate)
        difference = _difference(wanted, dataset)
        if not difference:
            return dataset, f"data: using {candidate} (same fingerprint as recorded)"
        looked.append(f"{candidate} ({difference})")
    gone = f"its dataset {recorded} is gone and no other file" if recorded else "no file"  # an export records none
    raise DuvaeError(f"run {run_dir}: {gone} holds the same data: {', '.join(looked)}; {hint.format(name=name)}")


def _recorded_identity(run_dir: Path) -> dict:
    """What the data must match: the binding, or (older runs) the manifest's whole-file sha256."""
    bound = binding.read(run_dir)
    if bound is not None:
        return {"binding": bound}
    try:
        return {"sha256": json.loads((Path(run_dir) / "manifest.json").read_text(encoding="utf-8"))["data_sha256"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {"sha256": None}  # nothing recorded: no file can be shown to be the run's data


def _difference(wanted: dict, dataset) -> str:
    """'' when `dataset` is the recorded data, else what differs, in words."""
    if "binding" not in wanted:
        return "" if wanted["sha256"] and wanted["sha256"] == dataset.sha256 else "another sha256 or none recorded"
    bound, now = wanted["binding"], binding.describe(dataset)
    if bound["format"] != now["format"]:
        return "other input format or vocabulary"
    changed = [split for split, fingerprint in bound["splits"].items() if now["splits"].get(split) != fingerprint]
    if not changed:
        return ""
    return f"split {changed[0]} differs" if len(changed) == 1 else f"splits {', '.join(changed)} differ"
