"""What `duvae classify` writes: `probe.csv` (tidy) and the `probe` group of `metrics.h5`.

probe.csv has metrics.csv's columns (design.md §4, plus `checkpoint` and `checkpoint_sha256` as
`duvae evaluate` writes them) and `labels` (the budget), `repeat`, `subset` (official | stratified) and
`n_train` (labelled examples used); `n_samples` (and `examples`) is the number of examples the
accuracy is computed over; `split_sha256`, `dataset_sha256` and `precision` say which data and
arithmetic made it. A new classification replaces the rows and subgroups of the budgets it ran and
keeps those of other budgets made with the same checkpoint (rows of an older probe.csv without the
last columns too, those columns left empty: unknown).

Both files are written atomically. metrics.h5 is copied, its `probe` group updated in the copy, and
the copy renamed over the original under the lock `duvae evaluate` takes for the same file, so the
other groups survive, concurrent writers do not lose each other's groups, and a failure leaves the old
file intact.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import h5py
import numpy as np

from duvae_cli import __version__
from duvae_cli.io import atomic_h5, atomic_write_text
from duvae_cli.locking import locked_for_update  # the lock evaluate uses on metrics.h5
from duvae_cli.probe.classify import ESTIMATOR, ProbeResult

COLUMNS = ["run", "dataset", "model", "split", "metric", "value", "estimator", "n_samples", "seed",
           "checkpoint", "checkpoint_sha256", "labels", "repeat", "subset", "n_train",
           "split_sha256", "dataset_sha256", "examples", "precision"]  # what made the number
REQUIRED = ("split", "labels", "checkpoint_sha256")  # an older probe.csv without the rest is still kept
PRECISION = "fp32"  # features are computed by the frozen encoder in fp32


def _provenance(result, role: str, n: int) -> dict:
    """The split's fingerprint, the dataset's sha256, the examples scored and the precision."""
    return {"split_sha256": getattr(result, "split_sha256", {}).get(role, ""),
            "dataset_sha256": getattr(result, "dataset_sha256", ""), "examples": n, "precision": PRECISION}


def probe_rows(result: ProbeResult) -> list[dict]:
    rows = []
    for r in result.records:
        for role, value, n in (("test", r.test_accuracy, result.n_test), ("valid", r.valid_accuracy, result.n_valid)):
            rows.append({"run": result.run_dir.name, "dataset": result.dataset, "model": result.model,
                         "split": result.split_labels[role], "metric": "accuracy", "value": value,
                         "estimator": ESTIMATOR, "n_samples": n, "seed": r.seed, "labels": r.budget,
                         "repeat": r.repeat, "subset": r.kind, "n_train": r.n_train,
                         "checkpoint": result.checkpoint, "checkpoint_sha256": result.checkpoint_sha256,
                         **_provenance(result, role, n)})
    return rows


def _kept_rows(path: Path, budgets: set[str], checkpoint_sha256: str,
               splits: set[str] | None = None) -> list[dict]:
    """Rows of an existing probe.csv of the same checkpoint for other budgets or other splits (new data
    is probed under its own split label, so a run's own rows survive a `classify --data`)."""
    if not path.is_file():
        return []
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        if any(c not in (reader.fieldnames or ()) for c in REQUIRED):
            return []
        splits = splits or {"test", "valid"}
        return [{c: row.get(c) or "" for c in COLUMNS} for row in reader  # columns it lacks: unknown
                if (row["labels"] not in budgets or row["split"] not in splits)
                and row["checkpoint_sha256"] == checkpoint_sha256]


def write_probe_csv(path: Path, result: ProbeResult) -> Path:
    """Write the rows of `result`, keeping those of other budgets already there for this checkpoint."""
    return write_probe_rows(path, probe_rows(result), {r.budget for r in result.records},
                            result.checkpoint_sha256)


def write_probe_rows(path: Path, new_rows: list[dict], budgets, checkpoint_sha256: str) -> Path:
    """probe.csv = `new_rows` (of `budgets`) + the rows of other budgets already there for this checkpoint."""
    kept = _kept_rows(path, {str(b) for b in budgets}, checkpoint_sha256, {row["split"] for row in new_rows})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    rows = kept + [{**row, "value": repr(row["value"])} for row in new_rows]
    writer.writerows(sorted(rows, key=lambda row: (int(row["labels"]), int(row["repeat"]), row["split"])))
    atomic_write_text(path, buffer.getvalue())
    return path


def write_probe_h5(path: Path, result: ProbeResult, fill=None, group: str = "probe") -> Path:
    """Write the `probe` group of `path`, keeping every other group (and, when the checkpoint is the
    same, the probe subgroups of other budgets). `fill(group, result)` writes the group (default: the
    label-budget probe's layout)."""
    with locked_for_update(path), atomic_h5(path, update=True) as f:  # built in memory: io.atomic_h5
        if group in f and f[group].attrs.get("checkpoint_sha256") != result.checkpoint_sha256:
            del f[group]
        (fill or _write_group)(f.require_group(group), result)
    return path


def _write_group(group: h5py.Group, result: ProbeResult) -> None:
    """probe/ attrs: provenance; probe/<N>/ one group per budget: settings attrs, arrays over repeats."""
    group.attrs.update({
        "estimator": ESTIMATOR, "features": "eval-mode posterior mean", "checkpoint": result.checkpoint,
        "checkpoint_sha256": result.checkpoint_sha256, "n_valid": result.n_valid, "n_test": result.n_test,
        "n_classes": result.n_classes, "majority_accuracy": result.majority_accuracy,
        "duvae_version": __version__,
    })
    if result.data:  # `classify --data`: which files the probe trained, stopped and was scored on
        group.attrs["data"] = json.dumps(result.data)
    for budget in dict.fromkeys(r.budget for r in result.records):
        rows = [r for r in result.records if r.budget == budget]
        if str(budget) in group:
            del group[str(budget)]
        sub = group.create_group(str(budget))
        sub.attrs.update({"subset": rows[0].kind, "n_train": rows[0].n_train, "seed": result.options.seed,
                          "settings": json.dumps(result.options.settings.to_dict())})
        arrays = {
            "seed": np.array([r.seed for r in rows], dtype=np.int64),
            "test_accuracy": np.array([r.test_accuracy for r in rows]),
            "valid_accuracy": np.array([r.valid_accuracy for r in rows]),
            "valid_loss": np.array([r.valid_loss for r in rows]),
            "epochs": np.array([r.epochs for r in rows], dtype=np.int64),
            "weight": np.stack([r.weight for r in rows]),  # (R, K, D)
            "bias": np.stack([r.bias for r in rows]),  # (R, K)
        }
        for name, array in arrays.items():
            sub.create_dataset(name, data=array, track_times=False)


def write_outputs(result: ProbeResult, where: Path | None = None) -> list[Path]:
    """probe.csv and metrics.h5 in the run directory, or in `where` (`classify --out DIR`)."""
    folder = Path(where or result.run_dir)
    return [write_probe_csv(folder / "probe.csv", result),
            write_probe_h5(folder / "metrics.h5", result, group=result.h5_group)]


def result_json(result: ProbeResult, files: list[Path]) -> dict:
    return {"run": str(result.run_dir), "dataset": result.dataset, "model": result.model,
            "checkpoint": result.checkpoint, "checkpoint_sha256": result.checkpoint_sha256,
            "features": "eval-mode posterior mean", "probe": result.options.settings.to_dict(),
            "seed": result.options.seed, "n_valid": result.n_valid, "n_test": result.n_test,
            "n_classes": result.n_classes, "majority_accuracy": result.majority_accuracy,
            "results": result.summary(), "files": [str(p) for p in files]}


# ------------------------------------------------------------- Omniglot: one probe per alphabet ---

def alphabet_rows(result) -> list[dict]:
    """probe.csv rows of an `alphabets.AlphabetResult`: per k (`labels` = drawings per character),
    `accuracy` (mean over alphabets, what `duvae report` shows), `accuracy_char_weighted`, and one
    `alphabet_accuracy` row per alphabet (`subset` = its name)."""
    base = {"run": result.run_dir.name, "dataset": result.dataset, "model": result.model, "split": "test",
            "seed": result.options.seed, "repeat": 0, "checkpoint": result.checkpoint,
            "checkpoint_sha256": result.checkpoint_sha256, **_provenance(result, "test", "")}
    rows = []
    for summary in result.summary():
        k, common = summary["per_class"], {**base, "labels": summary["per_class"], "n_train": summary["n_train"]}
        for metric, key, estimator in (("accuracy", "accuracy_mean", "linear_probe_alphabet_mean"),
                                       ("accuracy_char_weighted", "accuracy_char_weighted",
                                        "linear_probe_char_weighted")):
            rows.append({**common, "metric": metric, "value": summary[key], "estimator": estimator,
                         "n_samples": summary["n_test"], "examples": summary["n_test"],
                         "subset": f"first-{k}-per-character"})
        rows += [{**common, "metric": "alphabet_accuracy", "value": r.accuracy, "estimator": "linear_probe",
                  "n_samples": r.n_test, "examples": r.n_test, "subset": r.name, "n_train": r.n_train}
                 for r in result.records if r.per_class == k]
    return rows


def _write_alphabet_group(group: h5py.Group, result) -> None:
    """probe/ attrs: provenance; probe/per-class-<k>/: arrays over alphabets."""
    group.attrs.update({"estimator": "linear_probe_per_alphabet", "features": "eval-mode posterior mean",
                        "checkpoint": result.checkpoint, "checkpoint_sha256": result.checkpoint_sha256,
                        "drawer_order": result.drawer_order, "seed": result.options.seed,
                        "settings": json.dumps({"optimizer": "adam", "lr": result.options.lr,
                                                "batch_size": result.options.batch_size, "loss": "sum",
                                                "epochs": result.options.epochs}),
                        "duvae_version": __version__})
    for summary in result.summary():
        name = f"per-class-{summary['per_class']}"
        if name in group:
            del group[name]
        sub = group.create_group(name)
        sub.attrs.update({key: value for key, value in summary.items()})
        rows = [r for r in result.records if r.per_class == summary["per_class"]]
        sub.create_dataset("alphabet", data=np.array([r.alphabet for r in rows], dtype=np.int64))
        sub.create_dataset("name", data=np.array([r.name for r in rows], dtype=object),
                           dtype=h5py.string_dtype("utf-8"))
        for key in ("n_characters", "n_train", "n_test", "accuracy"):
            sub.create_dataset(key, data=np.array([getattr(r, key) for r in rows]))


def write_alphabet_outputs(result, where: Path | None = None) -> list[Path]:
    """probe.csv (other k of the same checkpoint kept) and the `probe` group of metrics.h5, in the run
    directory or in `where`."""
    folder = Path(where or result.run_dir)
    budgets = {r.per_class for r in result.records}
    return [write_probe_rows(folder / "probe.csv", alphabet_rows(result), budgets, result.checkpoint_sha256),
            write_probe_h5(folder / "metrics.h5", result, fill=_write_alphabet_group)]


def alphabet_json(result, files: list[Path]) -> dict:
    return {"run": str(result.run_dir), "dataset": result.dataset, "model": result.model,
            "checkpoint": result.checkpoint, "checkpoint_sha256": result.checkpoint_sha256,
            "features": "eval-mode posterior mean", "protocol": "one linear probe per alphabet",
            "drawer_order": result.drawer_order, "seed": result.options.seed, "results": result.summary(),
            "alphabets": [vars(r) for r in result.records], "files": [str(p) for p in files]}
