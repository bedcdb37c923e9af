"""Experiment tracking: `--log tensorboard|mlflow|csv` (docs/tracking.md).

The training loop calls one logger, a `Tracker`, with plain records (tracking/records.py); the
tracker thins the per-step records to every `every`-th step and fans each record out to its sinks
(TensorBoard event files, an MLflow run). `csv` is history.csv, which every run writes. What a run
logs to is kept in RUN/tracking.json, so `--resume`, `duvae evaluate --log` and `duvae classify --log`
continue the same curves.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from duvae_cli.errors import UsageError
from duvae_cli.io import atomic_write_text
from duvae_cli.options import Option, checked
from duvae_cli.tracking.records import epoch_scalars, hparams, step_scalars

TRACKERS = ("csv", "tensorboard", "mlflow")
PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow"}  # tracker -> module it needs
STATE = "tracking.json"

# `--log` and `--log-every` of train, sweep, evaluate and classify.
LOG = Option("log", str, (), "Also log to tensorboard or mlflow (repeatable; csv = history.csv, always written); "
             "needs the `tracking` extra of duvae (tensorboard, mlflow-skinny); see docs/tracking.md.",
             choices=TRACKERS, multiple=True)
LOG_EVERY = Option("log_every", int, None, "Log the per-step values every N optimizer steps (default 10; --resume: "
                   "the run's own).", range="[1, 1000000000]")


def check_trackers(kinds: list[str] | None, every: int | None = 10) -> tuple[str, ...]:
    """The trackers beyond csv, validated: unknown names (LOG), a --log-every outside LOG_EVERY
    (None: not given; 0 is refused, not read as the default) and missing packages are usage errors."""
    out = []
    for kind in checked(LOG, kinds):
        if kind in PACKAGES and importlib.util.find_spec(PACKAGES[kind]) is None:
            raise UsageError(f"--log {kind}: the {PACKAGES[kind]} package is not installed; "
                             'pip install "duvae[tracking]"')
        if kind != "csv" and kind not in out:
            out.append(kind)
    checked(LOG_EVERY, every)
    return tuple(out)


def read_state(run_dir: Path) -> dict:
    path = Path(run_dir) / STATE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


class Tracker:
    """A callable that takes a record. Sinks open at the first record: a resumed run's first step is
    where TensorBoard purges an interrupted attempt's later events (tensorboard_sink.py)."""

    def __init__(self, run_dir: Path, kinds: tuple[str, ...], every: int = 10, resume: bool = False,
                 tags: dict[str, str] | None = None):
        self.run_dir, self.kinds, self.every, self.resume = Path(run_dir), kinds, every, resume
        self.tags = tags or {}  # set with the start record (records.run_tags)
        self.sinks: list | None = None

    def __call__(self, record: dict) -> None:
        sinks = self._open(record["step"])
        kind, step = record["kind"], record["step"]
        if kind == "start":
            for sink in sinks:
                sink.start(hparams(record["config"]), self.tags)
        elif kind == "step":
            if step % self.every == 0:
                for sink in sinks:
                    sink.scalars(step, step_scalars(record))
        elif kind == "epoch":
            for sink in sinks:
                sink.scalars(step, epoch_scalars(record))
                for name, values in record["histograms"].items():
                    sink.histogram(step, name, values)
        elif kind == "final":
            for sink in sinks:
                sink.hparams(step, hparams(record["config"]), record["metrics"])
        elif kind == "results":
            for sink in sinks:
                sink.scalars(step, record["metrics"])
        else:
            raise ValueError(f"unknown record kind {kind!r}")

    def _open(self, first_step: int) -> list:
        if self.sinks is None:
            state = read_state(self.run_dir)
            saved = state.get("mlflow", {})
            self.sinks = []
            if "tensorboard" in self.kinds:
                from duvae_cli.tracking.tensorboard_sink import TensorBoardSink

                self.sinks.append(TensorBoardSink(self.run_dir, first_step if self.resume else None))
            if "mlflow" in self.kinds:
                from duvae_cli.tracking.mlflow_sink import MlflowSink

                self.sinks.append(MlflowSink(self.run_dir, saved))
            kinds = sorted(set(state.get("trackers", [])) | set(self.kinds))
            state.update(trackers=kinds, log_every=state.get("log_every", self.every),
                         **({"mlflow": saved} if saved else {}))
            atomic_write_text(self.run_dir / STATE, json.dumps(state, indent=2, sort_keys=True) + "\n")
        return self.sinks

    def close(self, status: str = "FINISHED") -> None:
        """`status`: FINISHED, FAILED or KILLED (MLflow's run states)."""
        for sink in self.sinks or ():
            sink.close(status)
        self.sinks = None


def training_tracker(run_dir: Path, kinds: list[str] | None, every: int | None, resume: bool,
                     tags: dict[str, str] | None = None) -> Tracker | None:
    """The tracker of `duvae train`: `kinds` as given, else (on --resume) those the run logged to;
    `tags` (records.run_tags) go with the config at the start."""
    state = read_state(run_dir) if resume else {}
    every = every if every is not None else state.get("log_every", 10)
    chosen = check_trackers(kinds if kinds is not None else state.get("trackers"), every)
    return Tracker(run_dir, chosen, every, resume, tags) if chosen else None


def add_results(run_dir: Path, kinds: list[str] | None, metrics: dict[str, float]) -> None:
    """`duvae evaluate/classify --log`: the results as scalars at the run's last training step."""
    chosen = check_trackers(kinds)
    if not chosen:
        return
    run_dir = Path(run_dir).resolve()  # runs/latest -> the run itself (its name names the MLflow run)
    manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    step = int(manifest.get("steps") or 0)
    tracker = Tracker(run_dir, chosen)
    try:
        tracker({"kind": "results", "step": step, "metrics": metrics})
    finally:
        tracker.close()
