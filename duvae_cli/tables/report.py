"""`duvae report`: many runs' metrics.csv and probe.csv joined into one Table-1/2/3-style table.

One row per model: runs are grouped by dataset, model and every config field except those that do
not change the model (seed, device, paths, logging cadence), so the runs of one row differ only in
their seed. Each cell is the mean and sample standard deviation (ddof 1) over the row's runs; a run's
probe accuracy for a label budget is first averaged over its repeats. Cells of runs that lack a value
are left out of that cell's mean (the cell records its own n).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from duvae_cli.errors import DuvaeError, UsageError
from duvae_cli.progress import SILENT, Reporter
from duvae_cli.tables.runs import read_config, read_tidy, resolve_runs

DEFAULT_METRICS = ("iw_nll", "kl", "mi", "au")
HEADERS = {"iw_nll": "NLL", "elbo_nll": "ELBO-NLL", "kl": "KL", "mi": "MI", "au": "AU", "ppl": "PPL",
           "iw_ppl": "IW-PPL", "elbo_ppl": "ELBO-PPL", "rec": "Rec", "mpd": "MPD", "ce": "CE"}
NOT_MODEL = ("seed", "device", "data_root", "checkpoint_every", "eval_batch_size")  # do not split rows
REGULARIZER_FIELDS = ("gamma", "p", "beta", "fb_lambda", "delta")  # always shown when set


@dataclass(frozen=True)
class Column:
    key: tuple  # ("metric", name, estimator) or ("accuracy", labels)
    header: str

    @property
    def is_accuracy(self) -> bool:
        return self.key[0] == "accuracy"


@dataclass
class Cell:
    values: list[float] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return float(np.mean(self.values)) if self.values else None

    @property
    def std(self) -> float | None:
        return float(np.std(self.values, ddof=1)) if len(self.values) > 1 else None


@dataclass
class Row:
    dataset: str
    model: str
    settings: str
    runs: list[str]
    cells: dict[tuple, Cell] = field(default_factory=dict)


@dataclass
class ReportTable:
    columns: list[Column]
    rows: list[Row]
    split: str


def run_values(run_dir: Path, metrics: tuple[str, ...], split: str, checkpoint: str = "best") -> dict[tuple, float]:
    """A run's numbers by column key: metrics.csv rows of `split` and `checkpoint` (mean per metric and
    estimator) and probe.csv accuracies on `split` (mean over repeats, per label budget)."""
    values: dict[tuple, float] = {}
    tidy = read_tidy(run_dir / "metrics.csv", checkpoint)
    if tidy is not None:
        rows = tidy[(tidy["split"] == split) & tidy["metric"].isin(metrics)]
        for (metric, estimator), group in rows.groupby(["metric", "estimator"], sort=False):
            values[("metric", metric, estimator)] = float(group["value"].mean())
    probe = read_tidy(run_dir / "probe.csv", checkpoint)
    if probe is not None:
        rows = probe[(probe["split"] == split) & (probe["metric"] == "accuracy")]
        for labels, group in rows.groupby("labels"):
            values[("accuracy", int(labels))] = float(group["value"].mean())
    return values


def _model_key(config: dict) -> str:
    return json.dumps({k: v for k, v in sorted(config.items()) if k not in NOT_MODEL}, default=str)


def _settings(config: dict, varying: set[str]) -> str:
    shown = [k for k in REGULARIZER_FIELDS if config.get(k) is not None]
    shown += sorted(k for k in varying if k not in shown)
    return ", ".join(f"{k}={config.get(k)}" for k in shown)


def _columns(keys: set[tuple], metrics: tuple[str, ...]) -> list[Column]:
    columns = []
    for metric in metrics:
        estimators = [k[2] for k in sorted(keys) if k[0] == "metric" and k[1] == metric]
        for estimator in estimators:
            header = HEADERS.get(metric, metric)
            columns.append(Column(("metric", metric, estimator),
                                  f"{header} [{estimator}]" if len(estimators) > 1 else header))
    budgets = sorted(k[1] for k in keys if k[0] == "accuracy")
    return columns + [Column(("accuracy", b), f"acc@{b}") for b in budgets]


def build_report(paths: list[Path], metrics: tuple[str, ...] = DEFAULT_METRICS, split: str = "test",
                 checkpoint: str = "best", reporter: Reporter = SILENT) -> ReportTable:
    _check_metrics(metrics)
    groups: dict[tuple, list[tuple[Path, dict, dict]]] = {}
    for run_dir in resolve_runs(paths):
        config, values = _with_defaults(read_config(run_dir)), run_values(run_dir, metrics, split, checkpoint)
        if not values:
            reporter.log(f"{run_dir}: no metrics.csv or probe.csv values on {split}; skipped "
                         "(run `duvae evaluate` / `duvae classify` first)")
            continue
        key = (config.get("dataset"), config.get("model"), _model_key(config))
        groups.setdefault(key, []).append((run_dir, config, values))
    if not groups:
        raise DuvaeError(f"no run has metrics.csv or probe.csv values on the {split} split")
    keys = {k for members in groups.values() for _, _, values in members for k in values}
    return ReportTable(_columns(keys, metrics), _rows(groups), split)


def _check_metrics(metrics: tuple[str, ...]) -> None:
    """Every name must be one `duvae evaluate` writes (metrics/report.py ORDER)."""
    from duvae_cli.metrics.report import ORDER

    known = [*ORDER, *(h for h in HEADERS if h not in ORDER)]
    unknown = [m for m in metrics if m not in known]
    if unknown or not metrics:
        raise UsageError(f"--metrics {','.join(unknown) or repr('')}: unknown metric; choose from: {', '.join(known)}")


def _with_defaults(config: dict) -> dict:
    """A saved config completed with today's defaults: a run made before a field existed ran as its
    default (new fields default to the old behaviour), so it groups with the newer runs."""
    from duvae_cli.train.config import TrainConfig

    return {**TrainConfig().to_dict(), **config}


def _rows(groups: dict) -> list[Row]:
    rows = []
    for (dataset, model, _), members in sorted(groups.items(), key=lambda item: tuple(map(str, item[0]))):
        config = members[0][1]
        siblings = [m[0][1] for k, m in groups.items() if k[:2] == (dataset, model)]
        varying = {f for f in config if f not in NOT_MODEL and len({str(c.get(f)) for c in siblings}) > 1}
        row = Row(str(dataset), str(model), _settings(config, varying), [m[0].name for m in members])
        for _, _, values in members:
            for key, value in values.items():
                if np.isfinite(value):
                    row.cells.setdefault(key, Cell()).values.append(value)
        rows.append(row)
    return rows
