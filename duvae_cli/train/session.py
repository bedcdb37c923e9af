"""Start or resume a training run: dataset, run directory, config and manifest around the loop."""

from __future__ import annotations

import json
import time
from pathlib import Path

from duvae_cli.errors import DuvaeError, UsageError
from duvae_cli.progress import SILENT, Reporter
from duvae_cli.train import distributed
from duvae_cli.tracking import check_trackers, training_tracker
from duvae_cli.train.config import TrainConfig
from duvae_cli.train.loop import resolve_device, train
from duvae_cli.train.precision import Precision
from duvae_cli.train.run import manifest, new_run_dir, point_latest, read_config, write_json


def open_training_data(config: TrainConfig, reporter: Reporter = SILENT):
    """The prepared dataset of `config`; the synthetic one is generated when absent."""
    from duvae_cli.data.prepare import PrepareOptions, prepare_dataset
    from duvae_cli.data.store import dataset_path, load_dataset

    path = dataset_path(config.dataset, config.data_root)
    if not path.exists():
        if config.dataset != "synthetic":
            raise UsageError(f"--dataset {config.dataset}: {path} not found; run "
                             f"`duvae prepare {config.dataset} --out {config.data_root}` first")
        reporter.log(f"preparing the synthetic dataset in {path}")
        prepare_dataset("synthetic", PrepareOptions(out=Path(config.data_root)), reporter=reporter)
    dataset = load_dataset(path)
    if config.size != "paper" and dataset.kind != "image":
        raise UsageError(f"--size {config.size}: sizes other than paper exist for image datasets only")
    missing = [s for s in ("train", "valid") if s not in dataset.splits]
    if missing:
        raise DuvaeError(f"{path}: training needs a {' and '.join(missing)} split; it has "
                         f"{', '.join(dataset.splits) or 'none'}")
    return path, dataset


def start_run(config: TrainConfig, runs_root: Path = Path("runs"), run_dir: Path | None = None,
              reporter: Reporter = SILENT, log: list[str] | None = None, log_every: int | None = None) -> Path:
    """Under torchrun every rank trains; rank 0 alone prepares data first, creates the run
    directory (its name is then shared) and writes the files. `log`: trackers (tracking/)."""
    _check_runnable(config)  # before a run directory exists
    check_trackers(log, log_every or 10)
    with distributed.main_first(distributed.world()):
        path, dataset = open_training_data(config, reporter)
    run_dir, info = distributed.run_on_main(_create_run, config, runs_root, run_dir, path, dataset, reporter)
    _train_and_finish(config, dataset, run_dir, info, reporter, resume=False, log=(log, log_every))
    return run_dir


def _create_run(config: TrainConfig, runs_root: Path, run_dir: Path | None, path: Path, dataset,
                reporter: Reporter) -> tuple[Path, dict]:
    run_dir = new_run_dir(config, runs_root, run_dir)
    write_json(run_dir / "config.json", config.to_dict())
    info = manifest(config, path, dataset.sha256, str(resolve_device(config.device)))
    info["world_size"] = distributed.world().size  # processes that trained (torchrun), 1 otherwise
    write_json(run_dir / "manifest.json", info)
    point_latest(run_dir)
    reporter.log(f"run directory: {run_dir}")
    return run_dir, info


def resume_run(run_dir: Path, epochs: int | None = None, device: str | None = None,
               reporter: Reporter = SILENT, log: list[str] | None = None, log_every: int | None = None) -> Path:
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    if not (run_dir / "checkpoints" / "last.pt").exists():
        raise DuvaeError(f"{run_dir}: nothing to resume (no checkpoints/last.pt)")
    changes = {k: v for k, v in (("epochs", epochs), ("device", device)) if v is not None}
    here = distributed.world()
    if changes:
        config = TrainConfig(**{**config.to_dict(), **changes})
    _check_runnable(config)
    check_trackers(log, log_every or 10)
    if changes and here.is_main:
        write_json(run_dir / "config.json", config.to_dict())
    info = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    with distributed.main_first(here):
        path, dataset = open_training_data(config, reporter)
    if dataset.sha256 != info["data_sha256"]:
        raise DuvaeError(f"{path}: the dataset changed since {run_dir} started (sha256 differs)")
    info.setdefault("resumed_utc", []).append(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    info["world_size"] = here.size
    _train_and_finish(config, dataset, run_dir, info, reporter, resume=True, log=(log, log_every))
    return run_dir


def _check_runnable(config: TrainConfig) -> None:
    """Usage errors that depend on where the run runs: torchrun's limits, --precision vs device."""
    distributed.check_config(config, distributed.world())
    Precision(config.precision, resolve_device(config.device))


def _train_and_finish(config, dataset, run_dir: Path, info: dict, reporter: Reporter, resume: bool,
                      log: tuple = (None, None)) -> None:
    started = time.monotonic()
    tracker = training_tracker(run_dir, *log, resume) if distributed.world().is_main else None
    try:
        state = train(config, dataset, run_dir, reporter, resume=resume, log=tracker)
        if tracker is not None:
            final = {"best_val_loss": state.best_loss, "epochs_done": state.epoch, "lr_decays": state.decays,
                     **{k: v for k, v in (state.history[-1] if state.history else {}).items()
                        if k.startswith("val_")}}
            tracker({"kind": "final", "step": state.step, "config": config.to_dict(), "metrics": final})
    except BaseException as exc:
        if tracker is not None:
            tracker.close("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise
    if tracker is not None:
        tracker.close()
    if not distributed.world().is_main:
        return
    info.update(finished_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                train_seconds=info.get("train_seconds", 0.0) + time.monotonic() - started,
                epochs_done=state.epoch, steps=state.step, lr_decays=state.decays,
                best_val_loss=state.best_loss)
    write_json(run_dir / "manifest.json", info)
