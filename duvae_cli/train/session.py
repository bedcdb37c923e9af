"""Start or resume a training run: dataset, runtime, run directory, config and manifest around the
loop. The runtime (device, precision) is decided once here, before any file is written, and passed
down (runtime/)."""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import time
from pathlib import Path

from duvae_cli import interrupt, locking
from duvae_cli.config import TrainConfig, decide_runtime
from duvae_cli.config.resolve import check_ranges
from duvae_cli.data import binding
from duvae_cli.data.store import dataset_path, load_dataset, peek_kind
from duvae_cli.errors import DuvaeError, UsageError
from duvae_cli.interrupt import Interrupted
from duvae_cli.options import Option
from duvae_cli.progress import SILENT, Reporter, note
from duvae_cli.runs.checkpoint import load_checkpoint
from duvae_cli.runs.layout import LOCK, checkpoint_file, checkpoint_path, has_checkpoint, require_run_dir
from duvae_cli.runs.run import manifest, new_run_dir, point_latest, read_config, read_json, write_json
from duvae_cli.runs.selfcheck import check_checkpoint
from duvae_cli.runs.trust import check_folder
from duvae_cli.runtime import Runtime, distributed
from duvae_cli.tracking import check_trackers, training_tracker
from duvae_cli.tracking.records import run_tags
from duvae_cli.train import parallel
from duvae_cli.train.loop import Hooks, train

RUN_DIR = Option("run_dir", Path, None, "Run directory (default runs/<generated>).")
RESUME = Option("resume", Path, None, "Continue this run from its last checkpoint.")


def open_training_data(config: TrainConfig, reporter: Reporter = SILENT):
    """The prepared dataset of `config`; the synthetic one is generated when absent."""
    from duvae_cli.prepare import PrepareOptions, prepare_dataset

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
    directory (its name is then shared) and writes the files. A run that stops before its first
    checkpoint is removed again; `runs/latest` moves to a run once it has a checkpoint. `log`: trackers
    (tracking/)."""
    parallel.check_config(config, distributed.world())  # torchrun's limits, before a run directory exists
    check_trackers(log, log_every)
    runtime = decide_runtime(config, _data_kind(config))  # device and precision: usage errors before any write
    config = dataclasses.replace(config, precision=runtime.precision)
    with distributed.main_first(runtime.world):
        path, dataset = open_training_data(config, reporter)
    reporter.log(f"precision: {config.precision} ({runtime.precision_reason})")
    with contextlib.ExitStack() as held:
        run_dir, info = distributed.run_on_main(_create_run, config, runtime, runs_root, run_dir, path, dataset,
                                                reporter, held)
        _check_ranks_data(run_dir, dataset, info["data_binding"])
        try:
            _train_and_finish(config, dataset, run_dir, info, runtime, reporter, resume=False, log=(log, log_every))
        except BaseException as exc:  # also Ctrl-C: no run directory without a checkpoint survives
            replaced = _without_dead_end(run_dir, exc)
            if replaced is exc:
                raise
            raise replaced from None
    return run_dir


def _without_dead_end(run_dir: Path, exc: BaseException) -> BaseException:
    """Remove a run directory that has no checkpoint yet (rank 0); the exception to raise."""
    if not distributed.world().is_main or checkpoint_path(run_dir, "last").exists():
        return exc
    shutil.rmtree(run_dir, ignore_errors=True)
    if isinstance(exc, (KeyboardInterrupt, Interrupted)):
        return Interrupted(f"interrupted before the first checkpoint; {run_dir} removed")
    return exc


def _data_kind(config: TrainConfig) -> str:
    """The kind of the data a run will train on, read from the prepared file's attributes; before
    it is prepared, a named dataset's own kind (Omniglot is images even before `duvae prepare`), else
    text (the synthetic data, generated on demand, is text); what `auto` precision reads."""
    from duvae_cli.prepare.registry import named_kind

    path = dataset_path(config.dataset, config.data_root)
    return (peek_kind(path) if path.exists() else None) or named_kind(config.dataset)


def _create_run(config: TrainConfig, runtime: Runtime, runs_root: Path, run_dir: Path | None, path: Path, dataset,
                reporter: Reporter, held: contextlib.ExitStack) -> tuple[Path, dict]:
    if run_dir is not None and _is_dead_end(run_dir):  # left by a duvae that kept failed runs
        with locking.hold(run_dir / LOCK, f"run {run_dir}"):  # refuses if it is being written now
            shutil.rmtree(run_dir)
        reporter.log(f"replacing {run_dir}: a run that stopped before its first checkpoint")
    run_dir = new_run_dir(config, runs_root, run_dir)
    held.enter_context(locking.hold(run_dir / LOCK, f"run {run_dir}"))
    write_json(run_dir / "config.json", config.to_dict())
    info = manifest(config, path, dataset.sha256, str(runtime.device))
    info["world_size"] = runtime.world.size  # processes that trained (torchrun), 1 otherwise
    info["precision"] = config.precision  # the resolved training precision (config.json has it too)
    info["data_binding"] = binding.write(run_dir, dataset)  # vocabulary, format, split fingerprints
    write_json(run_dir / "manifest.json", info)
    reporter.log(f"run directory: {run_dir}")
    return run_dir, info


def _is_dead_end(run_dir: Path) -> bool:
    """A run directory with a config but no checkpoint at all."""
    return (run_dir / "config.json").exists() and not has_checkpoint(run_dir)


def _check_ranks_data(run_dir: Path, dataset, bound: dict) -> None:
    """Under torchrun each rank loaded the dataset itself: all must be rank 0's data (same format,
    same train and valid splits); every rank raises the same one line otherwise."""
    here = distributed.world()
    if not here.active:
        return
    problem = ""
    try:
        binding.check(run_dir, dataset, bound=bound, exact=binding.RESUME_SPLITS)
    except DuvaeError as exc:
        problem = f"rank {here.rank}: {exc}"
    problems = [p for p in distributed.all_gather_object(problem) if p]
    if problems:
        raise DuvaeError(problems[0])


def resume_run(run_dir: Path, epochs: int | None = None, device: str | None = None,
               reporter: Reporter = SILENT, log: list[str] | None = None, log_every: int | None = None) -> Path:
    run_dir = Path(run_dir)
    require_run_dir(run_dir)  # --resume of a path that is not there: exit 2
    with contextlib.ExitStack() as held:
        if run_dir.is_dir():
            distributed.run_on_main(held.enter_context, locking.hold(run_dir / LOCK, f"run {run_dir}"))
            check_folder(run_dir)  # a stranger's run: no symlink out of it (runs/trust.py)
        last = checkpoint_file(run_dir, "last")  # a pickled run of an earlier duvae: `duvae migrate`
        config = read_config(run_dir)
        if not last.exists():
            raise DuvaeError(f"{run_dir}: nothing to resume (no checkpoints/{last.name})")
        _check_last(run_dir, config)
        changes = {k: v for k, v in (("epochs", epochs), ("device", device)) if v is not None}
        here = distributed.world()
        if changes:
            check_ranges(changes)  # --epochs 99999999999999999999 is refused, not stored
            config = TrainConfig(**{**config.to_dict(), **changes})
        parallel.check_config(config, here)
        check_trackers(log, log_every)
        runtime = decide_runtime(config, _data_kind(config))  # precision: the run's own (config.json)
        info = read_json(run_dir / "manifest.json")
        with distributed.main_first(here):
            path, dataset = _resume_data(run_dir, config, info, reporter)
        for line in binding.check(run_dir, dataset, exact=binding.RESUME_SPLITS):
            note(reporter, line)
        _check_ranks_data(run_dir, dataset, info.get("data_binding") or binding.describe(dataset))
        if changes and here.is_main:
            write_json(run_dir / "config.json", config.to_dict())
        info.setdefault("resumed_utc", []).append(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        info["world_size"] = here.size
        _train_and_finish(config, dataset, run_dir, info, runtime, reporter, resume=True, log=(log, log_every))
    return run_dir


def _check_last(run_dir: Path, config: TrainConfig) -> None:
    """The last checkpoint agrees with config.json and is finite (runs/selfcheck.py), before anything
    is written."""
    last = checkpoint_path(run_dir, "last")
    check_checkpoint(load_checkpoint(last, "cpu"), config, last)

def _resume_data(run_dir: Path, config: TrainConfig, info: dict, reporter: Reporter):
    """The data a resumed run goes on with: its config's DATA_ROOT/NAME; for a moved run, the same data
    at the recorded path or under data/ (data/locate.py, one note); synthetic data is made again."""
    from duvae_cli.data.locate import data_roots, run_dataset

    if dataset_path(config.dataset, config.data_root).exists():
        return open_training_data(config, reporter)
    try:
        dataset, found = run_dataset(run_dir, info.get("data_path"), config.dataset, data_roots(config.data_root),
                                     hint="put the same dataset at data/{name}/dataset.h5")
    except DuvaeError:
        if config.dataset == "synthetic":  # generated again, bit for bit; the binding check below holds it
            return open_training_data(config, reporter)
        raise
    if found:
        note(reporter, found)
    return Path(dataset.path), dataset


def _train_and_finish(config, dataset, run_dir: Path, info: dict, runtime: Runtime, reporter: Reporter,
                      resume: bool, log: tuple = (None, None)) -> None:
    """Train; Ctrl-C (one process) stops after the step in progress, with a checkpoint of it.
    `log`: (trackers, log_every) for tracking/ (rank 0 only)."""
    started = time.monotonic()
    here = runtime.world
    pointed = []

    def on_checkpoint() -> None:  # runs/latest names a run only once it has a checkpoint
        if not pointed:
            point_latest(run_dir)
            pointed.append(True)

    tracker = training_tracker(run_dir, *log, resume, run_tags(info)) if here.is_main else None
    try:
        with interrupt.deferred(enabled=not here.active) as stop:  # torchrun ranks would stop at different steps
            hooks = Hooks(reporter=reporter, log=tracker, on_checkpoint=on_checkpoint, stop=stop)
            state = train(config, dataset, run_dir, runtime, hooks, resume=resume)
        if tracker is not None:
            final = {"best_val_loss": state.best_loss, "epochs_done": state.epoch, "lr_decays": state.decays,
                     **{k: v for k, v in (state.history[-1] if state.history else {}).items()
                        if k.startswith("val_")}}
            tracker({"kind": "final", "step": state.step, "config": config.to_dict(), "metrics": final})
    except BaseException as exc:
        if tracker is not None:
            tracker.close("KILLED" if isinstance(exc, (KeyboardInterrupt, Interrupted)) else "FAILED")
        raise
    if tracker is not None:
        tracker.close()
    if not here.is_main:
        return
    info.update(finished_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                train_seconds=info.get("train_seconds", 0.0) + time.monotonic() - started,
                epochs_done=state.epoch, steps=state.step, lr_decays=state.decays,
                best_val_loss=state.best_loss)
    write_json(run_dir / "manifest.json", info)
