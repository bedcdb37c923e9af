"""Evaluate a trained run and write its outputs: what `duvae evaluate` calls.

    report = evaluate_run("runs/latest", split="test", options=EvalOptions(iw_samples=500))
    report.metrics["iw_nll"], report.estimators["iw_nll"]      # nats per sentence, "iw"

Writes `metrics.h5` (per-example values, posterior parameters, per-dimension diagnostics) and rows
of `metrics.csv` in the run directory (store.py), resuming from `metrics.partial/` if an earlier
evaluation with the same split, checkpoint, data, seed and K was interrupted. With `out` (`--out DIR`)
all of these, and the evaluation's lock, are in DIR instead: a run on a read-only file system is
evaluated that way (runs/layout.py results_dir refuses a read-only run without it, before any work).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from duvae_cli import __version__, locking
from duvae_cli.data import binding
from duvae_cli.errors import DuvaeError, UsageError
from duvae_cli.interrupt import Interrupted
from duvae_cli.methods import STRATEGIES
from duvae_cli.metrics.evaluate import (EvalOptions, ExampleSubset, estimators, examples_for, score_examples,
                                        summarise)
from duvae_cli.metrics.names import ORDER
from duvae_cli.metrics.sharding import score_sharded
from duvae_cli.metrics.store import PartialResults, update_metrics_csv, write_metrics_h5
from duvae_cli.progress import SILENT, note
from duvae_cli.runs.layout import results_dir
from duvae_cli.runtime.distributed import world

EVAL_PRECISION = "fp32"  # evaluation never uses bf16 or TF32 (docs/metrics.md)


@dataclass
class EvalReport:
    identity: dict  # run, dataset, model, split, checkpoint, its sha256, seed, K, threshold, ...
    metrics: dict  # name -> value (nats per example, PPL, counts)
    estimators: dict  # name -> estimator label
    per_dim: dict = field(default_factory=dict)  # name -> (D,) array
    files: dict = field(default_factory=dict)  # "metrics_h5", "metrics_csv" -> path

    def to_dict(self) -> dict:
        return {**self.identity,
                "metrics": {k: {"value": self.metrics[k] if math.isfinite(self.metrics[k]) else None,
                                "estimator": self.estimators[k]}
                            for k in ORDER if k in self.metrics},
                "per_dim": {k: np.asarray(v).tolist() for k, v in self.per_dim.items()},
                "files": self.files}

    def title(self) -> str:
        i = self.identity
        return (f"{i['run']} - {i['split']} - {i['checkpoint']} ({i['checkpoint_sha256'][:12]}) - "
                f"K={i['iw_samples']} seed={i['seed']}")

    def rows(self) -> list[list]:
        return [[k, self.metrics[k], self.estimators[k]] for k in ORDER if k in self.metrics]


def evaluate_run(run_dir: Path = Path("runs/latest"), split: str = "test", checkpoint: str = "best",
                 options: EvalOptions = EvalOptions(), device: str = "auto", reporter=SILENT,
                 out: Path | None = None, data_root: Path | None = None) -> EvalReport:
    """Reload a run's checkpoint and its dataset (a moved run: found under `data_root`, data/locate.py),
    evaluate `split`, write the outputs (into `out` when given)."""
    from duvae_cli.runtime import as_device
    from duvae_cli.runs.load import load_trained

    if checkpoint not in ("best", "last"):
        raise UsageError(f"--checkpoint {checkpoint!r}: choose best or last")
    device = as_device(device)  # under torchrun: cuda:LOCAL_RANK
    results_dir(Path(run_dir), out)  # a read-only run without --out stops before loading anything
    trained = load_trained(Path(run_dir), checkpoint, device, data_root=data_root)
    return evaluate_trained(trained, split, options, reporter, out=out)


def evaluate_trained(trained, split: str = "test", options: EvalOptions = EvalOptions(),
                     reporter=SILENT, out: Path | None = None) -> EvalReport:
    """Evaluate a loaded run (`duvae_cli.runs.run.Trained`) and write metrics.h5 / metrics.csv (in
    the run directory, or in `out`)."""
    where = results_dir(trained.run_dir, out)
    dataset = trained.dataset
    if split not in dataset.splits:
        raise UsageError(f"--split {split!r}: dataset {dataset.name} has no such split; "
                         f"it has: {', '.join(dataset.splits)}")
    for line in getattr(trained, "data_notes", ()):  # a changed split, data found elsewhere: even with -q
        note(reporter, line)
    identity = _identity(trained, split, options)
    examples = examples_for(dataset.splits[split])
    if len(examples) == 0:
        raise DuvaeError(f"--split {split!r}: the split of dataset {dataset.name} is empty")
    if options.examples is not None:
        examples = ExampleSubset.draw(examples, options.examples, options.seed)
    identity["n_evaluated"] = len(examples)
    key = {k: identity[k] for k in ("split", "checkpoint_sha256", "dataset_sha256", "seed", "iw_samples",
                                    "examples")}
    here = world()  # under torchrun: every rank scores a shard (metrics/sharding.py), rank 0 writes
    partial = None if here.active else PartialResults(where / "metrics.partial",
                                                      {**key, "n_examples": len(examples)}, options.flush_seconds)
    if here.active:
        results = score_sharded(trained.model, examples, options, reporter, here)
    else:
        results = _score_locked(trained, where, examples, options, reporter, partial)
    if isinstance(examples, ExampleSubset):
        results["example_index"] = examples.index  # which examples of the split were evaluated
    summary = summarise(results, options, examples.lengths)
    flow = getattr(trained.model, "flow", None) is not None  # MC KL; MI/AU of the base Gaussian
    labels = estimators(options, flow)
    suffix = STRATEGIES[trained.config.strategy].capabilities.evaluation_note  # SA-VAE: "-amortised"
    if suffix:  # evaluated without what its training did per batch (docs/metrics.md)
        labels = {k: v if v == "count" else f"{v}{suffix}" for k, v in labels.items()}
    report = EvalReport(identity, summary["metrics"], labels, summary["per_dim"])
    if non_finite(report):
        reporter.log(f"note: {', '.join(non_finite(report))} not finite; written as empty values with a note "
                     "in metrics.csv (docs/metrics.md)")
    if here.is_main:
        _write(where, report, results)
    if partial is not None:
        partial.discard()
    return report


def _score_locked(trained, where: Path, examples, options: EvalOptions, reporter, partial: PartialResults) -> dict:
    """One process per evaluation (same run, split, checkpoint, data, seed, K), its lock beside the
    results it writes (`where`: the run or --out); Ctrl-C keeps the finished examples in
    metrics.partial/ and says how to continue."""
    run_dir = Path(trained.run_dir)
    lock = Path(where) / f".{partial.directory.name}.lock"
    with locking.hold(lock, f"evaluation of {run_dir} ({partial.key['split']}, same options)"):
        try:
            return score_examples(trained.model, examples, options, reporter, partial)
        except Interrupted:
            raise Interrupted(f"interrupted; finished examples are kept in {partial.directory}; run the "
                              "same duvae evaluate command again to continue") from None


def _identity(trained, split: str, options: EvalOptions) -> dict:
    config = trained.config
    return {"run": Path(trained.run_dir).name, "dataset": config.dataset, "model": config.model,
            "split": split, "checkpoint": trained.checkpoint_name,
            "checkpoint_sha256": trained.checkpoint_sha256,
            "dataset_sha256": getattr(trained.dataset, "sha256", ""),
            "split_sha256": binding.fingerprint_of(trained.dataset, split),  # which data every number is of
            "iw_samples": options.iw_samples, "seed": options.seed,
            "au_threshold": options.au_threshold, "mi_estimator": options.mi_estimator,
            "batch_size": options.batch_size, "examples": options.examples or "all",
            "precision": EVAL_PRECISION}


def _write(run_dir: Path, report: EvalReport, results: dict) -> None:
    ident = report.identity
    group = f"{ident['split']}/{ident['checkpoint']}-{ident['checkpoint_sha256'][:12]}"
    attrs = h5_attrs(report)
    h5_path, csv_path = Path(run_dir) / "metrics.h5", Path(run_dir) / "metrics.csv"
    write_metrics_h5(h5_path, group, results, report.per_dim, attrs)
    rows = csv_rows(report)
    update_metrics_csv(csv_path, rows)
    report.files = {"metrics_h5": str(h5_path), "metrics_csv": str(csv_path), "group": group}


def non_finite(report: EvalReport) -> list[str]:
    """Names of the metrics that are NaN or infinite: never stored as numbers (docs/metrics.md)."""
    return [k for k in ORDER if k in report.metrics and not math.isfinite(report.metrics[k])]


def h5_attrs(report: EvalReport) -> dict:
    """The metrics.h5 group's attributes: the identity, every finite metric as `metric_<name>`, and
    the names of the non-finite ones in `non_finite_metrics` (JSON)."""
    bad = non_finite(report)
    return {**report.identity, **{f"metric_{k}": v for k, v in report.metrics.items() if k not in bad},
            "non_finite_metrics": json.dumps(bad), "estimators": json.dumps(report.estimators),
            "units": "nats per example", "duvae_version": __version__,
            "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def csv_rows(report: EvalReport) -> list[dict]:
    """metrics.csv rows: design.md §4's tidy columns, then what made the number (store.CSV_COLUMNS).
    A non-finite value is written empty, with `note` saying what it was."""
    ident, bad = report.identity, non_finite(report)
    common = {"run": ident["run"], "dataset": ident["dataset"], "model": ident["model"], "split": ident["split"],
              "n_samples": ident["iw_samples"], "seed": ident["seed"], "checkpoint": ident["checkpoint"],
              **{k: ident[k] for k in ("checkpoint_sha256", "split_sha256", "dataset_sha256", "mi_estimator",
                                       "au_threshold", "precision")},
              "examples": ident["n_evaluated"]}
    return [{**common, "metric": name, "estimator": report.estimators[name],
             "value": "" if name in bad else report.metrics[name],
             "note": f"not finite ({report.metrics[name]})" if name in bad else ""}
            for name in ORDER if name in report.metrics]
