"""Reading what runs leave behind: config.json, history.csv, and the tidy metrics.csv / probe.csv.

Only reads files; nothing here needs the model or the dataset.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from duvae_cli.errors import DuvaeError

TIDY_COLUMNS = ["run", "dataset", "model", "split", "metric", "value", "estimator", "n_samples", "seed"]


def resolve_runs(paths: list[Path]) -> list[Path]:
    """Existing run directories, each once (`runs/latest` and the run it points at are one run)."""
    seen: dict[Path, None] = {}
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise DuvaeError(f"{path}: no such run directory")
        if not (path / "config.json").is_file():
            raise DuvaeError(f"{path}: not a duvae run directory (no config.json)")
        seen.setdefault(path.resolve(), None)
    return list(seen)


def read_config(run_dir: Path) -> dict:
    path = Path(run_dir) / "config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DuvaeError(f"{path}: unreadable ({exc})") from None


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
    frame = pd.read_csv(path)
    missing = [c for c in TIDY_COLUMNS if c not in frame.columns]
    if missing:
        raise DuvaeError(f"{path}: not a tidy duvae CSV (no column {', '.join(missing)})")
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
    frame["estimator"] = frame["estimator"].fillna("")
    if checkpoint is not None and "checkpoint" in frame.columns:
        frame = frame[frame["checkpoint"].fillna(checkpoint) == checkpoint]
    return frame


@dataclass(frozen=True)
class MetricValue:
    value: float
    source: str  # where it came from, for captions: estimator, split and file


def metric_value(run_dir: Path, metric: str, split: str = "test", checkpoint: str = "best") -> MetricValue:
    """`metric` of a run: from metrics.csv (rows of `split` and `checkpoint`; the first estimator listed
    when there are several), else from history.csv (column `metric` or `val_<metric>`) at the
    best-validation epoch."""
    metrics = read_tidy(Path(run_dir) / "metrics.csv", checkpoint)
    if metrics is not None:
        rows = metrics[(metrics["metric"] == metric) & (metrics["split"] == split)]
        if len(rows):
            estimator = rows["estimator"].iloc[0]
            value = rows.loc[rows["estimator"] == estimator, "value"].mean()
            return MetricValue(float(value), f"{metric} [{estimator or 'default'}] on {split}, {checkpoint} "
                                              "checkpoint, metrics.csv")
    history = read_history(run_dir)
    column = metric if metric in history else f"val_{metric}"
    if column not in history:
        known = sorted(set(metrics["metric"]) if metrics is not None else set())
        raise DuvaeError(f"--metric {metric}: not in {run_dir}/metrics.csv ({', '.join(known) or 'absent'}) "
                         f"nor history.csv ({', '.join(history.columns)})")
    best = history.loc[history["val_loss"].idxmin()] if "val_loss" in history else history.iloc[-1]
    return MetricValue(float(best[column]), f"{column} at the best epoch ({int(best['epoch'])}), history.csv")
