"""A run's stored numbers as evaluations: the numbers made with one set of settings from one
checkpoint, with what made them and the command that recomputes them (read by tables/report.py).

    found = run_evaluations(run_dir, ("iw_nll", "kl"), "test", "best")
    found[0].settings["n_samples"], found[0].values[("metric", "iw_nll", "iw")], found[0].state
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from duvae_cli.runs.layout import SUFFIX
from duvae_cli.tables import fresh
from duvae_cli.tables.runs import SETTINGS, Unknown, latest_evaluations, read_tidy

DATA = "split_sha256"  # which data the numbers are of (data/binding.py fingerprint)


@dataclass
class Evaluation:
    run_dir: Path
    kind: str  # "evaluate" (metrics.csv) or "classify" (probe.csv)
    checkpoint: str  # best or last
    checkpoint_sha256: str  # stored with the numbers ('' in rows written before it was)
    settings: dict | None  # SETTINGS and DATA -> value as stored (Unknown where not); None: probe accuracies
    values: dict  # column key ("metric", name, estimator) or ("accuracy", labels) -> value
    command: str  # what recomputes these numbers on the current checkpoint
    state: str = "unverified"  # current | stale | unverified (tables/fresh.py), set by `check`
    current_sha256: str | None = None  # the checkpoint file's sha256 now (None: no such file)

    def check(self, current_sha256: str | None) -> "Evaluation":
        self.current_sha256 = current_sha256
        self.state = fresh.state(self.checkpoint_sha256, current_sha256)
        return self

    def why_unverified(self) -> str:
        if self.current_sha256 is None:
            return f"no checkpoints/{self.checkpoint}{SUFFIX}"
        return f"{'probe' if self.kind == 'classify' else 'metrics'}.csv rows without checkpoint_sha256"


def run_evaluations(run_dir: Path, metrics: tuple[str, ...], split: str, checkpoint: str = "best") -> list[Evaluation]:
    """metrics.csv numbers of `split` and `checkpoint`, one Evaluation per settings (its latest
    evaluation: tables/runs.py `latest_evaluations`), then probe.csv accuracies on `split` (mean over
    repeats per label budget) as one Evaluation without settings."""
    run_dir = Path(run_dir)
    return [*_metric_evaluations(run_dir, metrics, split, checkpoint), *_probe_evaluations(run_dir, split, checkpoint)]


def _metric_evaluations(run_dir: Path, metrics: tuple[str, ...], split: str, checkpoint: str) -> list[Evaluation]:
    tidy = read_tidy(run_dir / "metrics.csv", checkpoint)
    if tidy is None:
        return []
    rows = tidy[(tidy["split"] == split) & tidy["metric"].isin(metrics)].to_dict("records")
    found = []
    for settings, members in latest_evaluations(rows, run_dir).items():
        sha = members[-1].get("checkpoint_sha256", "")
        named = {**dict(zip(SETTINGS, settings)),
                 DATA: members[-1].get(DATA) or Unknown(f"{run_dir}|{sha}")}
        values = {("metric", r["metric"], r["estimator"]): float(r["value"]) for r in members}
        command = fresh.evaluate_command(run_dir, split, checkpoint, named, [r["estimator"] for r in members])
        found.append(Evaluation(run_dir, "evaluate", checkpoint, sha, named, values, command))
    return found


def _probe_evaluations(run_dir: Path, split: str, checkpoint: str) -> list[Evaluation]:
    probe = read_tidy(run_dir / "probe.csv", checkpoint)
    if probe is None:
        return []
    rows = probe[(probe["split"] == split) & (probe["metric"] == "accuracy")].to_dict("records")
    if not rows:
        return []
    sha = rows[-1].get("checkpoint_sha256", "")  # `duvae classify` keeps the rows of one checkpoint only
    rows = [r for r in rows if r.get("checkpoint_sha256", "") == sha]
    values = {("accuracy", labels): float(np.mean([r["value"] for r in rows if int(r["labels"]) == labels]))
              for labels in dict.fromkeys(int(r["labels"]) for r in rows)}
    return [Evaluation(run_dir, "classify", checkpoint, sha, None, values,
                       fresh.classify_command(run_dir, checkpoint, rows))]
