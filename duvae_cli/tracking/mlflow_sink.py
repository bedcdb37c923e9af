"""MLflow: one MLflow run per duvae run, in the store of MLFLOW_TRACKING_URI, else ./mlruns (a local
file store). The MLflow run id is kept in RUN/tracking.json, so a resumed run, `duvae evaluate` and
`duvae classify` log into the same MLflow run.

The config goes in as params, with the run's tags, at the start record (before the first step); every
logged step and epoch is sent at once (`log_batch`, synchronous), so a run that is killed keeps what it
had logged and shows as RUNNING. MLflow cannot delete points, so a resumed run skips every (metric, step) at or before the last step
already stored for that metric: those steps are the ones an interrupted attempt logged after the
checkpoint, and a resumed run recomputes them identically.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

EXPERIMENT = "duvae"  # unless MLFLOW_EXPERIMENT_NAME is set


def default_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or Path("mlruns").resolve().as_uri()


class MlflowSink:
    def __init__(self, run_dir: Path, saved: dict):
        """`saved`: RUN/tracking.json's "mlflow" entry ({} for a new run); updated in place."""
        from mlflow.tracking import MlflowClient

        saved.setdefault("tracking_uri", default_uri())
        if saved["tracking_uri"].startswith("file:"):  # MLflow 3 keeps its file store behind this opt-in;
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # mlflow-skinny has no database store
        self.client = MlflowClient(tracking_uri=saved["tracking_uri"])
        if "run_id" not in saved:
            name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or EXPERIMENT
            experiment = self.client.get_experiment_by_name(name)
            experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(name)
            saved["run_id"] = self.client.create_run(experiment_id, run_name=Path(run_dir).name).info.run_id
        self.run_id = saved["run_id"]
        run = self.client.get_run(self.run_id)
        self.params = dict(run.data.params)
        self.last_step = {key: max(m.step for m in self.client.get_metric_history(self.run_id, key))
                          for key in run.data.metrics}  # {} for a new run

    def scalars(self, step: int, values: dict[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        fresh = [Metric(k, v, now, step) for k, v in values.items() if step > self.last_step.get(k, -1)]
        if fresh:
            self.client.log_batch(self.run_id, metrics=fresh)

    def histogram(self, step: int, name: str, values) -> None:
        """MLflow has no histograms: the values as a JSON artifact per step."""
        if step <= self.last_step.get(name, -1):
            return
        payload = {"step": step, "values": [float(v) for v in values]}
        self.client.log_text(self.run_id, json.dumps(payload), f"{name}/step-{step:08d}.json")

    def start(self, params: dict, tags: dict[str, str]) -> None:
        """Before the first step: the config as params and the run's tags (version, git sha, data
        fingerprints), each logged at once, so a running or crashed run can be filtered by them."""
        from mlflow.entities import RunTag

        self._params(params)
        if tags:
            self.client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in tags.items()])

    def hparams(self, step: int, params: dict, metrics: dict[str, float]) -> None:
        self._params(params)
        self.scalars(step, {f"final/{k}": v for k, v in metrics.items()})

    def _params(self, params: dict) -> None:
        """Params are write-once in MLflow: a value that changed on resume (e.g. epochs) is recorded as
        the tag `changed.<name>`."""
        from mlflow.entities import Param, RunTag

        new = [Param(k, str(v)) for k, v in params.items() if k not in self.params]
        changed = [RunTag(f"changed.{k}", str(v)) for k, v in params.items()
                   if k in self.params and self.params[k] != str(v)]
        for start in range(0, len(new), 100):  # log_batch takes at most 100 params
            self.client.log_batch(self.run_id, params=new[start:start + 100])
        if changed:
            self.client.log_batch(self.run_id, tags=changed)
        self.params.update({p.key: p.value for p in new})

    def close(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status=status)
