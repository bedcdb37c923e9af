"""`--log tensorboard|mlflow`: what the trackers' own readers find in a run's logs, resume without
duplicates, rank 0 only, and one clear line when a tracker is not installed."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from interrupting import Interrupt, StopAfter
from toyruns import make_toy_data, toy_sets

from duvae_cli.config.resolve import TrainConfig, resolve_config
from duvae_cli.runtime import World
from duvae_cli.train.loop import Hooks, train
from duvae_cli.train.schedule import kl_weight_at
from duvae_cli.train.session import resume_run, start_run

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

STEPS = 3  # per epoch: 48 train sentences in batches of 16


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return make_toy_data(tmp_path_factory.mktemp("toydata"))


def _config(data_root: Path, **changes) -> TrainConfig:
    flags = {"dataset": "toy", "epochs": 2, **changes}
    sets = [s for s in toy_sets(data_root) if s != "--set"]
    return resolve_config("toy", "du", flags, sets=sets)


def _events(run_dir: Path) -> EventAccumulator:
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "histograms": 0})
    events.Reload()
    return events


def _history(run_dir: Path) -> list[dict]:
    return list(csv.DictReader((run_dir / "history.csv").open(encoding="utf-8")))


def test_tensorboard_events_hold_the_logged_scalars(duvae, data_root, tmp_path):
    run = tmp_path / "run"
    result = duvae("train", "--dataset", "toy", "--epochs", "2", *toy_sets(data_root), "--run-dir", run,
                   "--log", "tensorboard", "--log", "csv", "--log-every", "2", "--quiet")
    assert result.code == 0, result.stderr
    events, history = _events(run), _history(run)
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/rec", "train/kl", "train/kl_weight", "train/lr", "train/grad_norm",
            "train/examples_per_s", "val/loss", "val/kl", "val/mi", "val/au", "val/ppl",
            "epoch/pre_bn_var_min", "final/best_val_loss"} <= tags
    assert [e.step for e in events.Scalars("train/loss")] == [2, 4, 6]  # every 2nd of 6 steps
    config = TrainConfig(**json.loads((run / "config.json").read_text()))
    for e in events.Scalars("train/kl_weight"):  # the annealing schedule, per step
        assert e.value == pytest.approx(kl_weight_at(config, e.step - 1, STEPS), rel=1e-6)
    for column in ("loss", "kl", "mi", "ppl"):  # one point per epoch, at the epoch's last step
        logged = events.Scalars(f"val/{column}")
        assert [e.step for e in logged] == [int(r["step"]) for r in history]
        assert [e.value for e in logged] == pytest.approx([float(r[f"val_{column}"]) for r in history], rel=1e-6)
    for e, row in zip(events.Histograms("val/kl_per_dim"), history):  # per-dimension KL sums to the KL
        assert e.histogram_value.num == config.latent_dim
        assert e.histogram_value.sum == pytest.approx(float(row["val_kl"]), rel=1e-5)
    assert "_hparams_/experiment" in events.PluginTagToContent("hparams")  # the config as hyper-parameters


def test_resume_continues_both_trackers_without_duplicates(data_root, tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    config = _config(data_root, checkpoint_every=2)
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    start_run(config, run_dir=whole, log=["tensorboard", "mlflow"], log_every=1)
    with pytest.raises(Interrupt):  # step 5 is logged, last.pt is from step 4
        start_run(config, run_dir=parts, reporter=StopAfter(5), log=["tensorboard", "mlflow"], log_every=1)
    resume_run(parts)  # the trackers and cadence come from parts/tracking.json
    for tag in ("train/loss", "train/kl", "val/mi"):
        logged = [[(e.step, e.value) for e in _events(run).Scalars(tag)] for run in (whole, parts)]
        assert logged[0] == logged[1]  # every step once, the values of the uninterrupted run
    client = MlflowClient()
    ids = [json.loads((run / "tracking.json").read_text())["mlflow"]["run_id"] for run in (whole, parts)]
    assert ids[0] != ids[1]
    for key in ("train/loss", "val/loss"):
        histories = [sorted((m.step, m.value) for m in client.get_metric_history(i, key)) for i in ids]
        assert histories[0] == histories[1]
        assert len({step for step, _ in histories[1]}) == len(histories[1])


def test_mlflow_store_holds_params_metrics_and_evaluation(duvae, data_root, tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    run = tmp_path / "run"
    assert duvae("train", "--dataset", "toy", "--epochs", "2", "--gamma", "0.6", "--p", "0.9",
                 *toy_sets(data_root), "--run-dir", run, "--log", "mlflow", "--log-every", "1", "--quiet").code == 0
    assert duvae("evaluate", run, "--iw-samples", "3", "--device", "cpu", "--log", "mlflow", "--quiet").code == 0
    run_id = json.loads((run / "tracking.json").read_text())["mlflow"]["run_id"]
    data = MlflowClient().get_run(run_id).data
    saved = json.loads((run / "config.json").read_text())
    assert data.params["gamma"] == "0.6" and data.params["p"] == "0.9"
    assert data.params.keys() == saved.keys()
    history, evaluation = _history(run), _metrics_csv(run)
    assert data.metrics["val/loss"] == pytest.approx(float(history[-1]["val_loss"]))
    assert data.metrics["final/best_val_loss"] == pytest.approx(min(float(r["val_loss"]) for r in history))
    assert data.metrics["evaluate/test/iw_nll"] == pytest.approx(evaluation["iw_nll"])
    steps = [m.step for m in MlflowClient().get_metric_history(run_id, "train/loss")]
    assert steps == list(range(1, 2 * STEPS + 1))


def _metrics_csv(run: Path) -> dict:
    rows = csv.DictReader((run / "metrics.csv").open(encoding="utf-8"))
    return {r["metric"]: float(r["value"]) for r in rows if r["split"] == "test"}


def test_only_the_main_rank_logs(data_root, tmp_path):
    config = _config(data_root, epochs=1)
    records: list[dict] = []
    from duvae_cli.runs.run import new_run_dir

    hooks = Hooks(log=records.append, stop=object())
    assert Hooks.of(hooks, World(rank=1, size=2)) == Hooks(stop=hooks.stop)  # another rank logs nothing
    assert Hooks.of(hooks, World(rank=0, size=2)) is hooks
    train(config, _toy(data_root), new_run_dir(config, tmp_path), hooks=Hooks(log=records.append))
    assert [r["step"] for r in records if r["kind"] == "step"] == [1, 2, 3]  # each step once
    assert [r["kind"] for r in records][-1] == "epoch"
    assert all(math.isfinite(float(r["grad_norm"])) for r in records if r["kind"] == "step")


def _toy(data_root: Path):
    from duvae_cli.data.store import load_dataset

    return load_dataset(data_root / "toy" / "dataset.h5")


@pytest.mark.parametrize("kind,needed", [("tensorboard", "tensorboard"), ("mlflow", "mlflow")])
def test_a_tracker_not_installed_is_one_line_exit_2(duvae, data_root, tmp_path, monkeypatch, kind, needed):
    monkeypatch.setitem(__import__("duvae_cli.tracking").tracking.PACKAGES, kind, "no_such_module_for_test")
    result = duvae("train", "--dataset", "toy", *toy_sets(data_root), "--run-dir", tmp_path / "r", "--log", kind)
    assert result.code == 2
    assert result.stderr.strip().count("\n") == 0
    assert f"--log {kind}" in result.stderr and 'pip install "duvae[tracking]"' in result.stderr
    assert not (tmp_path / "r").exists()  # refused before a run directory exists


def test_an_unknown_tracker_is_a_usage_error(duvae, data_root, tmp_path):
    result = duvae("train", "--dataset", "toy", *toy_sets(data_root), "--run-dir", tmp_path / "r", "--log", "wandb")
    assert result.code == 2 and "--log 'wandb': choose csv, tensorboard or mlflow" in result.stderr


def test_a_run_killed_in_its_first_epoch_already_has_its_params_and_tags_in_mlflow(tmp_path, monkeypatch):
    """Params and tags are logged before the first step, each write at once: a SIGKILL loses nothing."""
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3's file store, as the sink sets it
    data, run, store = make_toy_data(tmp_path / "data", (20000, 24, 24)), tmp_path / "run", (tmp_path / "mlruns").as_uri()
    proc = subprocess.Popen([sys.executable, "-m", "duvae_cli", "train", "--dataset", "toy", "--epochs", "2",
                             *toy_sets(data), "--run-dir", run, "--log", "mlflow", "--gamma", "0.6"],
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "MLFLOW_TRACKING_URI": store})
    watchdog = threading.Timer(120, proc.kill)
    watchdog.start()
    try:
        progress = next(line for line in proc.stderr if line.startswith("epoch 1/2: "))  # in its first epoch
        proc.send_signal(signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL
    finally:
        watchdog.cancel()
    assert "(100%)" not in progress and not (run / "history.csv").exists()  # killed before the epoch ended
    run_id = json.loads((run / "tracking.json").read_text())["mlflow"]["run_id"]
    found = MlflowClient(tracking_uri=store).get_run(run_id)
    saved, manifest = json.loads((run / "config.json").read_text()), json.loads((run / "manifest.json").read_text())
    assert found.data.params.keys() == saved.keys() and found.data.params["gamma"] == "0.6"
    tags = found.data.tags
    assert tags["duvae.version"] == manifest["duvae_version"]
    assert tags["duvae.dataset_sha256"] == manifest["data_sha256"]
    assert tags["duvae.split_sha256.train"] == manifest["data_binding"]["splits"]["train"]
    assert tags.get("duvae.git_sha") == manifest["git_sha"] or manifest["git_sha"] is None
    assert found.info.status == "RUNNING"  # nobody closed it: it was killed
