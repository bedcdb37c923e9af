"""The training loop, read top to bottom (design.md §2 schedules): `train` runs `Training.epoch` and
`Training.end_epoch` until the epochs or the lr decays are spent.

Per step: KL weight from the annealing schedule (schedule.py), the strategy's update (methods/),
running sums. Per epoch: validation ELBO/KL/MI/AU, best checkpoint on improvement, plateau halving
of the lr with a reload of the best weights, the `last` checkpoint and a `history.csv` row. Everything
a resumed run needs (model, optimizer, schedule state, RNG states, history) is in the checkpoint (a
safetensors file: runs/checkpoint.py), so stopping at any step and resuming gives bit-identical
results on the CPU.

What the loop tells the world goes through one `Hooks` object (progress, tracking records, a
callback after each checkpoint, a stop flag). The device and precision come decided, in a
`runtime.Runtime`. Under torchrun every rank runs this loop on the same global batches through a
`parallel.DataParallelVAE` (each rank trains on its shard) and rank 0 alone writes (docs/distributed.md).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from duvae_cli.config import TrainConfig, build_model, decide_runtime
from duvae_cli.data.batching import batches_for
from duvae_cli.data.subset import first_examples
from duvae_cli.errors import DuvaeError
from duvae_cli.interrupt import Interrupted
from duvae_cli.methods import build_strategy
from duvae_cli.optim import make_optimizer
from duvae_cli.progress import SILENT, Reporter, skip
from duvae_cli.runs.checkpoint import load_checkpoint, save_checkpoint
from duvae_cli.runs.history import write_history
from duvae_cli.runs.layout import checkpoint_path
from duvae_cli.runtime import Runtime
from duvae_cli.runtime.distributed import sync_from_main
from duvae_cli.runtime.precision import FP32, Precision
from duvae_cli.tracking.records import epoch_record, start_record, step_record
from duvae_cli.train import parallel
from duvae_cli.train.epochs import accumulate, epoch_line, history_row, nan_message, progress_fields, smoothed, \
    warn_bn_eps
from duvae_cli.train.schedule import kl_weight_at
from duvae_cli.train.validate import validate


@dataclass
class LoopState:
    """Schedule bookkeeping; saved in every checkpoint."""

    lr: float
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken
    batch_in_epoch: int = 0  # batches done in the current epoch
    best_loss: float = math.inf  # best validation loss (selects the best checkpoint)
    ref_loss: float = math.inf  # plateau reference: the last non-worse validation loss
    not_improved: int = 0
    decays: int = 0
    sums: dict = field(default_factory=dict)  # running training sums of the current epoch
    history: list = field(default_factory=list)  # one dict per finished epoch
    strategy_state: dict = field(default_factory=dict)  # the --strategy's bookkeeping (methods/)


@dataclass
class Hooks:
    """What the loop tells the world (rank 0; see `of`). `reporter`: progress and log lines; `log`: a
    callable taking the records of tracking/records.py; `on_checkpoint()`: after each save; `stop`
    (interrupt.StopFlag): when set, the last checkpoint is saved after the step in progress and the run ends
    with interrupt.Interrupted."""

    reporter: Reporter = SILENT
    log: Callable[[dict], None] | None = None
    on_checkpoint: Callable[[], None] | None = None
    stop: object | None = None

    def of(self, here) -> "Hooks":
        """The hooks of a process: all of them on rank 0; the others keep only the reporter (its progress
        task advances on every rank: a caller's reporter may stop the run there) and the stop flag."""
        return self if here.is_main else Hooks(reporter=self.reporter, stop=self.stop)


SHOW_EVERY = 25  # on a GPU, the progress line's moving averages are read back every this many steps


class NonFiniteLoss(DuvaeError):
    pass


def train(config: TrainConfig, dataset, run_dir: Path, runtime: Runtime | None = None,
          hooks: Hooks = Hooks(), resume: bool = False) -> LoopState:
    """Train (or with `resume`, continue from its last checkpoint) the run in `run_dir`. `runtime`: the device and
    precision decided at the command's start (a library caller without one gets
    `config.decide_runtime` here). fp32 training on CUDA uses TF32 matrix products (precision.py)."""
    if runtime is None:
        runtime = decide_runtime(config, getattr(dataset, "kind", "text"))
    if config.precision == "auto":  # the run records what `auto` resolved to
        config = dataclasses.replace(config, precision=runtime.precision)
    with Precision(runtime.precision, runtime.device).training():
        training = Training(config, dataset, Path(run_dir), runtime, hooks, resume)
        while training.state.epoch < config.epochs and training.state.decays < config.max_decays:
            training.epoch()
            training.end_epoch()
        return training.state


class Training:
    """One run's model, optimizer, strategy, data and state, between `train`'s epochs."""

    def __init__(self, config: TrainConfig, dataset, run_dir: Path, runtime: Runtime, hooks: Hooks, resume: bool):
        here = runtime.world  # a world of one outside torchrun (docs/distributed.md)
        parallel.check_config(config, here)
        self.config, self.run_dir, self.device, self.here = config, run_dir, runtime.device, here
        self.hooks = hooks.of(here)
        torch.manual_seed(config.seed)
        self.model = build_model(config, dataset).to(self.device)
        self.precision = Precision(runtime.precision, self.device)
        self.state, rng = LoopState(lr=config.lr), None
        self.optimizer = make_optimizer(config, self.model, self.state.lr)
        if resume:
            self.state, rng = _restore(self.checkpoint("last"), self.model, self.optimizer, self.device,
                                       self.precision)
        self.runner = parallel.replicate(self.model, here, config, rng, self.state.step)  # DDP, or the model
        # --train-examples: the first N of the train split; the run's data binding stays the whole file's
        self.train_data = batches_for(first_examples(dataset.splits["train"], config.train_examples))
        self.valid_data = batches_for(dataset.splits["valid"])
        self.steps_per_epoch = len(self.train_data.plan(config.batch_size, min_size=here.min_batch()))
        self.strategy = build_strategy(config, self.model, self.optimizer, self.train_data, self.runner,
                                       self.precision)
        if self.hooks.log is not None:  # the trackers get the config before any step (MLflow params)
            self.hooks.log(start_record(self.state, config.to_dict()))

    def checkpoint(self, name: str) -> Path:
        """RUN/checkpoints/<name>.safetensors (`name`: best or last)."""
        return checkpoint_path(self.run_dir, name)

    def epoch(self) -> None:
        """The steps of the current epoch (from the batch it stopped at, after a resume)."""
        config, state = self.config, self.state
        plan = self.train_data.plan(config.batch_size, np.random.default_rng([config.seed, state.epoch]),
                                    min_size=self.here.min_batch())  # the global plan; each rank its shard
        self.model.train()
        shown, ema = {}, None  # the progress line: moving averages of the steps' loss and KL (epochs.py)
        with self.hooks.reporter.task(f"epoch {state.epoch + 1}/{config.epochs}", total=len(self.train_data)) as task:
            skip(task, sum(len(b) for b in plan[: state.batch_in_epoch]))  # a resumed epoch's done batches
            for indices in plan[state.batch_in_epoch:]:
                out = self.step(indices)
                ema = smoothed(ema, out)
                if self.device.type == "cpu" or state.step % SHOW_EVERY == 0:  # a GPU: read back now and then
                    shown = progress_fields(ema)
                task.advance(len(out.rec), **shown)
                if config.checkpoint_every and state.step % config.checkpoint_every == 0:
                    self.save("last")
                self.stop_if_asked(in_epoch=True)

    def step(self, indices: np.ndarray):
        """One training batch: the strategy's update, then the running sums and the step record."""
        state = self.state
        batch = self.train_data.batch(indices, train=True).to(self.device)  # global: DDP trains each shard
        kl_weight = kl_weight_at(self.config, state.step, self.steps_per_epoch)
        started = time.perf_counter()
        out = self.strategy.step(batch, kl_weight, state)  # under DDP: rec, kl and loss of the global batch
        if not torch.isfinite(out.loss):
            raise NonFiniteLoss(nan_message(state, out, self.checkpoint("last")))
        state.step += 1
        state.batch_in_epoch += 1
        seconds = time.perf_counter() - started
        accumulate(state.sums, out, self.model, len(out.rec), seconds, kl_weight)
        if self.hooks.log is not None:
            self.hooks.log(step_record(state, out, kl_weight, seconds))
        return out

    def end_epoch(self) -> None:
        """Validation, best/last checkpoints, the plateau rule, history.csv and the epoch's line."""
        config, state, hooks = self.config, self.state, self.hooks
        metrics = validate(self.model, self.valid_data, config.eval_batch_size, seed=config.seed + state.epoch,
                           device=self.device, kl_weight=kl_weight_at(config, state.step - 1, self.steps_per_epoch),
                           mi_batch_size=self.strategy.mi_batch_size)  # weight of the last step (DU's floor)
        improved = metrics["loss"] < state.best_loss
        if improved:
            state.best_loss = metrics["loss"]
        state.history.append(history_row(state, metrics))
        if hooks.log is not None:
            hooks.log(epoch_record(state, metrics))
        note = self.strategy.end_epoch(state, metrics[self.strategy.mi_key])  # aggressive: ends at MI's first fall
        if note and self.here.is_main:
            hooks.reporter.log(note)
        decays = state.decays
        _plateau(config, state, metrics["loss"], self.model, self.optimizer, self.checkpoint("best"), self.device)
        if state.decays != decays:
            sync_from_main(self.model)  # the best checkpoint may be on rank 0's disk only
        state.epoch += 1
        state.batch_in_epoch, state.sums = 0, {}
        if improved:
            self.save("best")
        self.save("last")
        if self.here.is_main:
            write_history(self.run_dir / "history.csv", state.history)
            hooks.reporter.log(epoch_line(state.history[-1]))
            warn_bn_eps(hooks.reporter, state.history[-1], config)
        if state.epoch < config.epochs:
            self.stop_if_asked(in_epoch=False)

    def save(self, name: str) -> None:
        rng = parallel.checkpoint_rng(self.runner)  # every rank's streams (collective under DDP)
        if self.here.is_main:
            save_checkpoint(self.checkpoint(name), _snapshot(self.model, self.optimizer, self.state, self.config,
                                                            rng, self.precision))
            if self.hooks.on_checkpoint is not None:
                self.hooks.on_checkpoint()

    def stop_if_asked(self, in_epoch: bool) -> None:
        stop = self.hooks.stop
        if stop is not None and stop.requested:
            if in_epoch:
                self.save("last")
            raise Interrupted(f"interrupted at epoch {self.state.epoch + int(in_epoch)} step {self.state.step}; "
                              f"continue with: duvae train --resume {self.run_dir}")


def _plateau(config, state: LoopState, loss: float, model, optimizer, best_path: Path, device) -> None:
    """Halve the lr after `patience` epochs worse than the reference (from epoch `decay_from_epoch`
    on), reloading the best weights and restarting the optimizer. The reference is the last
    non-worse loss (`plateau_reference` "last", text) or the best loss so far ("best", images)."""
    reference = state.best_loss if config.plateau_reference == "best" else state.ref_loss
    if loss > reference:
        state.not_improved += 1
        if state.not_improved >= config.patience and state.epoch >= config.decay_from_epoch:
            state.lr *= config.lr_decay
            state.decays += 1
            state.not_improved, state.ref_loss = 0, loss
            if best_path.exists():  # a worse epoch is never the best one: the best checkpoint is current
                model.load_state_dict(load_checkpoint(best_path, device)["model"])
            fresh = make_optimizer(config, model, state.lr)
            optimizer.load_state_dict(fresh.state_dict())
    else:
        state.not_improved, state.ref_loss = 0, loss


def _snapshot(model, optimizer, state: LoopState, config: TrainConfig, rng: dict | None = None,
              precision: Precision = FP32) -> dict:
    """`rng`: the data-parallel streams (parallel.checkpoint_rng); else torch's own state."""
    if rng is None:
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
    payload = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
               "state": dataclasses.asdict(state), "rng": rng, "config": config.to_dict()}
    if precision.scaler is not None:  # fp16's loss scale
        payload["grad_scaler"] = precision.state_dict()
    return payload


def _restore(path: Path, model, optimizer, device, precision: Precision = FP32) -> tuple[LoopState, dict]:
    """Load `path` into the model and optimizer, restore torch's RNG; returns the state and the
    checkpoint's "rng" entry (the data-parallel streams, if any, are restored by `replicate`)."""
    payload = load_checkpoint(path, device)
    model.load_state_dict(payload["model"])
    optimizer.load_state_dict(payload["optimizer"])
    torch.set_rng_state(payload["rng"]["torch"].cpu())
    if "cuda" in payload["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(payload["rng"]["cuda"])
    precision.load_state_dict(payload.get("grad_scaler", {}))
    return LoopState(**payload["state"]), payload["rng"]
