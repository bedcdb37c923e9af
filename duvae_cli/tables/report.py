"""`duvae report`: many runs' metrics.csv and probe.csv joined into one Table-1/2/3-style table.

One row per model and evaluation settings. Runs are grouped by dataset, model and every config field
except those that do not change the model (seed, device, paths, logging cadence), so the runs of one
row differ only in their seed; and by the settings their numbers were made with (K, examples,
evaluation seed, MI estimator, AU threshold, precision, data fingerprint; tables/evaluations.py), so
numbers made with other settings are never averaged together. A run evaluated twice with the same
settings counts once (its latest evaluation). Each cell is the mean and sample standard deviation
(ddof 1) over the row's runs; a run's probe accuracy for a label budget is first averaged over its
repeats and shown in every settings row of that run. Cells of runs that lack a value are left out of
that cell's mean (the cell records its own n). Every number is checked against its run's checkpoint
file as it is now (tables/fresh.py): the `stale` column says whether a row holds numbers of an
earlier checkpoint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from duvae_cli.errors import DuvaeError, UsageError
from duvae_cli.progress import SILENT, Reporter
from duvae_cli.runs.layout import is_export
from duvae_cli.tables import fresh
from duvae_cli.tables.declared import model_options, with_defaults
from duvae_cli.tables.evaluations import DATA, Evaluation, run_evaluations
from duvae_cli.tables.runs import SETTINGS, read_config, resolve_runs

DEFAULT_METRICS = ("iw_nll", "kl", "mi", "au")
HEADERS = {"iw_nll": "NLL", "elbo_nll": "ELBO-NLL", "kl": "KL", "mi": "MI", "au": "AU", "ppl": "PPL",
           "iw_ppl": "IW-PPL", "elbo_ppl": "ELBO-PPL", "rec": "Rec", "mpd": "MPD", "ce": "CE"}
NOT_MODEL = ("seed", "device", "data_root", "checkpoint_every", "eval_batch_size")  # do not split rows
SETTING_HEADERS = {"n_samples": "K", "examples": "examples", "seed": "eval_seed", "mi_estimator": "mi_estimator",
                   "au_threshold": "au_threshold", "precision": "precision", DATA: "split_sha256"}
ALWAYS_SHOWN = ("n_samples", "examples")  # the other settings get a column when they vary


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
    evaluation: dict | None = None  # settings of the row's metrics.csv numbers; None: probe accuracies only
    members: list[Evaluation] = field(default_factory=list)  # where the row's numbers come from

    @property
    def stale(self) -> str:
        """yes: a number is of an earlier checkpoint; unknown: a number cannot be checked; else no."""
        states = {e.state for e in self.members}
        return "yes" if "stale" in states else "unknown" if "unverified" in states else "no"

    @property
    def stale_runs(self) -> list[str]:
        return list(dict.fromkeys(e.run_dir.name for e in self.members if e.state == "stale"))


@dataclass
class ReportTable:
    columns: list[Column]
    rows: list[Row]
    split: str
    setting_columns: list[str] = field(default_factory=lambda: list(ALWAYS_SHOWN))
    evaluations: list[Evaluation] = field(default_factory=list)  # of every run shown, each once

    @property
    def current(self) -> bool:
        """Every number is of its run's checkpoint as that file is now."""
        return all(e.state == "current" for e in self.evaluations)

    def freshness_note(self) -> str:
        """One line naming the runs with stale numbers (with the commands that refresh them) and the
        runs whose numbers cannot be checked; '' when every number is current."""
        stale: dict[str, list[str]] = {}
        unverified: dict[str, str] = {}
        for e in self.evaluations:
            if e.state == "stale":
                stale.setdefault(e.run_dir.name, []).append(e.command)
            elif e.state == "unverified":
                unverified.setdefault(e.run_dir.name, e.why_unverified())
        return fresh.freshness_note(stale, unverified)


def _model_key(config: dict) -> str:
    return json.dumps({k: v for k, v in sorted(config.items()) if k not in NOT_MODEL}, default=str)


def _settings(config: dict, varying: set[str]) -> str:
    shown = [k for k in model_options(str(config.get("model"))) if config.get(k) is not None]
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
    """The table of the run directories `paths`. Nothing is written; `table.current` says whether
    every number is of its run's current checkpoint, `table.freshness_note()` which are not."""
    _check_metrics(metrics)
    groups: dict[tuple, list[tuple[Path, dict, list[Evaluation]]]] = {}
    evaluations: list[Evaluation] = []
    skipped: list[Path] = []
    runs = resolve_runs(paths, skipped)
    if skipped:
        reporter.log(f"skipped {len(skipped)} path(s) that are not run directories: "
                     + ", ".join(str(p) for p in skipped[:5]) + (" ..." if len(skipped) > 5 else ""))
    for run_dir in _without_exports_of(runs, checkpoint, reporter):
        found = run_evaluations(run_dir, metrics, split, checkpoint)
        if not found:
            reporter.log(f"{run_dir}: no metrics.csv or probe.csv values on {split}; skipped "
                         "(run `duvae evaluate` / `duvae classify` first)")
            continue
        current = fresh.current_sha256(run_dir, checkpoint)
        evaluations += [e.check(current) for e in found]
        config = with_defaults(read_config(run_dir))
        model = (config.get("dataset"), config.get("model"), _model_key(config))
        probes = [e for e in found if e.settings is None]
        for scored in [e for e in found if e.settings is not None] or [None]:
            settings = None if scored is None else tuple(scored.settings[k] for k in (*SETTINGS, DATA))
            members = [e for e in (scored, *probes) if e is not None]
            groups.setdefault((*model, settings), []).append((run_dir, config, members))
    if not groups:
        raise DuvaeError(f"no run has metrics.csv or probe.csv values on the {split} split")
    keys = {k for e in evaluations for k in e.values}
    rows = _rows(groups)
    return ReportTable(_columns(keys, metrics), rows, split, _shown_settings(rows), evaluations)


def _without_exports_of(runs: list[Path], checkpoint: str, reporter: Reporter) -> list[Path]:
    """`runs` less each export (duvae export) of a checkpoint that a listed run holds: the same
    model's numbers would otherwise count twice in a mean."""
    held = {sha: r for r in runs if not is_export(r) and (sha := fresh.current_sha256(r, checkpoint)) is not None}
    kept = []
    for run_dir in runs:
        source = held.get(fresh.current_sha256(run_dir, checkpoint)) if is_export(run_dir) else None
        if source is not None:
            reporter.log(f"{run_dir}: an export of {source.name}'s {checkpoint} checkpoint, also listed; counted once")
            continue
        kept.append(run_dir)
    return kept


def _check_metrics(metrics: tuple[str, ...]) -> None:
    """Every name must be one `duvae evaluate` writes (metrics/report.py ORDER)."""
    from duvae_cli.metrics.names import ORDER

    known = [*ORDER, *(h for h in HEADERS if h not in ORDER)]
    unknown = [m for m in metrics if m not in known]
    if unknown or not metrics:
        raise UsageError(f"--metrics {','.join(unknown) or repr('')}: unknown metric; choose from: {', '.join(known)}")


def _shown_settings(rows: list[Row]) -> list[str]:
    """K and examples, then each other setting whose value differs between rows (an unknown differs)."""
    varying = [k for k in (*SETTINGS, DATA) if k not in ALWAYS_SHOWN
               and len({r.evaluation[k] for r in rows if r.evaluation is not None}) > 1]
    return [*ALWAYS_SHOWN, *varying]


def _sortable(value) -> tuple:
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def _order(item) -> tuple:
    """Rows by dataset, model and config, then by settings (numbers in numeric order)."""
    (dataset, model, config, settings), _ = item
    return (str(dataset), str(model), config, settings is not None, tuple(map(_sortable, settings or ())))


def _rows(groups: dict) -> list[Row]:
    rows = []
    for (dataset, model, _, settings), members in sorted(groups.items(), key=_order):
        config = members[0][1]
        siblings = [m[0][1] for k, m in groups.items() if k[:2] == (dataset, model)]
        varying = {f for f in config if f not in NOT_MODEL and len({str(c.get(f)) for c in siblings}) > 1}
        row = Row(str(dataset), str(model), _settings(config, varying), [m[0].name for m in members],
                  evaluation=None if settings is None else members[0][2][0].settings)
        for _, _, evaluations in members:
            row.members += evaluations
            for e in evaluations:
                for key, value in e.values.items():
                    if np.isfinite(value):
                        row.cells.setdefault(key, Cell()).values.append(value)
        rows.append(row)
    return rows
