"""Reading what runs leave behind: config.json, history.csv, and the tidy metrics.csv / probe.csv.

Only reads files; nothing here needs the model or the dataset.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from duvae_cli.errors import DuvaeError, UsageError
from duvae_cli.runs.layout import EXPORT_KEY

TIDY_COLUMNS = ["run", "dataset", "model", "split", "metric", "value", "estimator", "n_samples", "seed"]
# What an evaluation was made with (metrics.csv columns; docs/metrics.md): numbers that differ in any
# of them are never averaged together. n_samples is K; examples the number of examples evaluated.
SETTINGS = ("n_samples", "examples", "seed", "mi_estimator", "au_threshold", "precision")


@dataclass(frozen=True)
class Unknown:
    """A setting a row does not record (written before its column existed). It equals only itself
    (the same evaluation: run and checkpoint sha256), never a known value nor another run's unknown."""

    evaluation: str

    def __str__(self) -> str:
        return "?"


def settings_of(row: dict, run_dir: Path) -> tuple:
    """The row's SETTINGS values (strings as stored; `Unknown` where empty)."""
    unknown = Unknown(f"{run_dir}|{row.get('checkpoint_sha256', '')}")
    return tuple(row.get(k) or unknown for k in SETTINGS)


def latest_evaluations(rows: list[dict], run_dir: Path) -> dict[tuple, list[dict]]:
    """One run's metrics.csv rows (of one split and checkpoint name) by settings. Of each settings,
    only the rows of its latest evaluation (the checkpoint sha256 of its last row in file order;
    `duvae evaluate` appends), one per metric and estimator: an evaluation repeated with the same
    settings, e.g. after training on, counts once."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(settings_of(row, run_dir), []).append(row)
    latest = {}
    for settings, members in groups.items():
        sha = members[-1].get("checkpoint_sha256", "")
        chosen = {(r["metric"], r["estimator"]): r for r in members if r.get("checkpoint_sha256", "") == sha}
        latest[settings] = list(chosen.values())
    return latest


def describe_settings(row: dict, run_dir: Path) -> str:
    """'K=20, examples=200, seed=1' (unknown settings as ?), for captions."""
    values = dict(zip(SETTINGS, settings_of(row, run_dir)))
    return f"K={values['n_samples']}, examples={values['examples']}, seed={values['seed']}"


def resolve_runs(paths: list[Path], skipped: list[Path] | None = None) -> list[Path]:
    """Existing run directories, each once (`runs/latest` and the run it points at are one run).
    With `skipped` (a list), paths that exist but are not runs (a sweep's `figures/`, `logs/`,
    `report.md` in `ROOT/*`) are appended to it instead of refused, as long as one path is a run."""
    seen: dict[Path, None] = {}
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise UsageError(f"{path}: no such run directory")
        if not (path / "config.json").is_file():
            if skipped is None:
                raise DuvaeError(f"{path}: not a duvae run directory (no config.json)")
            skipped.append(path)
            continue
        seen.setdefault(path.resolve(), None)
    if not seen and skipped:
        raise DuvaeError(f"{skipped[0]}: not a duvae run directory (no config.json)"
                         + (f", nor are the {len(skipped) - 1} other paths" if len(skipped) > 1 else ""))
    return list(seen)


def read_config(run_dir: Path) -> dict:
    """A run's config.json as a dict (an export's: without its duvae_export block)."""
    path = Path(run_dir) / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DuvaeError(f"{path}: unreadable ({exc})") from None
    if isinstance(config, dict):
        config.pop(EXPORT_KEY, None)
    return config


def read_history(run_dir: Path) -> pd.DataFrame:
    path = Path(run_dir) / "history.csv"
    if not path.is_file():
        raise DuvaeError(f"{path}: missing (the run has not finished an epoch)")
    history = pd.read_csv(path)
    if history.empty or "epoch" not in history:
        raise DuvaeError(f"{path}: no epochs recorded")
    return history


def read_tidy(path: Path, checkpoint: str | None = None) -> pd.DataFrame | None:
    """A tidy CSV (metrics.csv, probe.csv), or None when the file is absent. With `checkpoint`, only
    the rows of that checkpoint (best or last) when the file records checkpoints."""
    path = Path(path)
    if not path.is_file():
        return None
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)  # settings stay as written; "" is unknown
    missing = [c for c in TIDY_COLUMNS if c not in frame.columns]
    if missing:
        raise DuvaeError(f"{path}: not a tidy duvae CSV (no column {', '.join(missing)})")
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce")  # an empty (non-finite) value: NaN
    if checkpoint is not None and "checkpoint" in frame.columns:
        frame = frame[frame["checkpoint"].replace("", checkpoint) == checkpoint]
    return frame


@dataclass(frozen=True)
class MetricValue:
    value: float
    source: str  # where it came from, for captions: estimator, settings, split and file
    row: dict | None = None  # the metrics.csv row (its checkpoint sha256 and settings); None: history.csv


def metric_value(run_dir: Path, metric: str, split: str = "test", checkpoint: str = "best") -> MetricValue:
    """`metric` of a run: from metrics.csv (rows of `split` and `checkpoint`; the first estimator listed
    when there are several, and of its rows the latest: one evaluation, never a mean over settings),
    else from history.csv (column `metric` or `val_<metric>`) at the best-validation epoch."""
    metrics = read_tidy(Path(run_dir) / "metrics.csv", checkpoint)
    if metrics is not None:
        rows = metrics[(metrics["metric"] == metric) & (metrics["split"] == split)].to_dict("records")
        if rows:
            estimator = rows[0]["estimator"]
            row = [r for r in rows if r["estimator"] == estimator][-1]
            return MetricValue(float(row["value"]), f"{metric} [{estimator or 'default'}; "
                               f"{describe_settings(row, Path(run_dir))}] on {split}, {checkpoint} checkpoint, "
                               "metrics.csv", row)
    history = read_history(run_dir)
    column = metric if metric in history else f"val_{metric}"
    if column not in history:
        known = sorted(set(metrics["metric"]) if metrics is not None else set())
        raise DuvaeError(f"--metric {metric}: not in {run_dir}/metrics.csv ({', '.join(known) or 'absent'}) "
                         f"nor history.csv ({', '.join(history.columns)})")
    best = history.loc[history["val_loss"].idxmin()] if "val_loss" in history else history.iloc[-1]
    return MetricValue(float(best[column]), f"{column} at the best epoch ({int(best['epoch'])}), history.csv")
