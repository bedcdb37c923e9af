"""The training loop: one function, read top to bottom (design.md §2 schedules).

Per step: KL weight from the annealing schedule, one z per example, loss = mean(rec + w * kl_term),
clip the global gradient norm, step, let the regularizer act (DU rescales its BN scales).
Per epoch: validation ELBO/KL/MI/AU, best checkpoint on improvement, plateau halving of the lr with
a reload of the best weights, `last.pt` and a `history.csv` row. Everything a resumed run needs
(model, optimizer, schedule state, RNG states, history) is in the checkpoint, so stopping at any
step and resuming gives bit-identical results on the CPU.

Under torchrun every rank runs this loop on the same global batches through a
`distributed.DataParallelVAE` (each rank trains on its shard) and rank 0 alone writes; `--precision`
autocasts the forward pass (train/precision.py). See docs/distributed.md.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from duvae_cli.errors import DuvaeError, UsageError
from duvae_cli.interrupt import Interrupted
from duvae_cli.tracking.records import epoch_record, step_record
from duvae_cli.progress import SILENT, Reporter
from duvae_cli.train import distributed
from duvae_cli.train.batching import batches_for
from duvae_cli.train.build import build_model
from duvae_cli.train.config import TrainConfig
from duvae_cli.train.history import write_history
from duvae_cli.train.precision import FP32, Precision, resolve_auto
from duvae_cli.train.run import load_checkpoint, save_checkpoint
from duvae_cli.train.step import clip_gradients, train_step  # noqa: F401  (re-exported: tests, benchmarks)
from duvae_cli.train.strategies import make_strategy
from duvae_cli.train.validate import validate


@dataclass
class LoopState:
    """Schedule bookkeeping; saved in every checkpoint."""

    lr: float
    epoch: int = 0  # epochs completed
    step: int = 0  # optimizer steps taken
    batch_in_epoch: int = 0  # batches done in the current epoch
    best_loss: float = math.inf  # best validation loss (selects best.pt)
    ref_loss: float = math.inf  # plateau reference: the last non-worse validation loss
    not_improved: int = 0
    decays: int = 0
    sums: dict = field(default_factory=dict)  # running training sums of the current epoch
    history: list = field(default_factory=list)  # one dict per finished epoch
    strategy_state: dict = field(default_factory=dict)  # the --strategy's bookkeeping (train/strategies.py)


SHOW_EVERY = 25  # on a GPU, the progress line's loss is read back every this many steps


class NonFiniteLoss(DuvaeError):
    pass


def resolve_device(name: str) -> torch.device:
    """`--device` (auto, cpu, cuda or cuda:N) as a torch device; a device this machine does not have
    is a usage error (exit 2), found before any file is read."""
    name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name != "cpu" and not (name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit())):
        raise UsageError(f"--device {name!r}: choose auto, cpu, cuda or cuda:N")
    if name.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise UsageError(f"--device {name}: CUDA is not available on this machine")
        if name != "cuda" and int(name[5:]) >= count:
            raise UsageError(f"--device {name}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    return torch.device(name)


def make_optimizer(config: TrainConfig, model: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr)
    return torch.optim.SGD(params, lr=lr)  # momentum 0, as the reference


def kl_weight_at(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """Linear annealing from kl_start to 1 over `warm_up` epochs, per step (the weight of step+1)."""
    if config.warm_up <= 0 or config.kl_start >= 1:
        return 1.0
    rate = (1.0 - config.kl_start) / (config.warm_up * steps_per_epoch)
    return min(1.0, config.kl_start + rate * (step + 1))


def train(config: TrainConfig, dataset, run_dir: Path, reporter: Reporter = SILENT,
          resume: bool = False, is_main: bool = True, stop=None, on_checkpoint=None, log=None) -> LoopState:
    """`stop` (interrupt.StopFlag): when set, last.pt is saved after the step in progress and the
    run ends with interrupt.Interrupted. `on_checkpoint()` is called after each save (rank 0).
    `log`: a callable taking the records of tracking/records.py (rank 0 only), or None.
    fp32 training on CUDA uses TF32 matrix products (train/precision.py); evaluation does not."""
    device = resolve_device(config.device)
    if config.precision == "auto":  # `duvae train` resolves it before the run starts (train/session.py)
        kind = getattr(dataset, "kind", "text")
        config = dataclasses.replace(config, precision=resolve_auto(config, device, kind)[0])
    with Precision(config.precision, device).training():
        return _train(config, dataset, run_dir, reporter, resume, is_main, stop, on_checkpoint, log)


def _train(config, dataset, run_dir, reporter, resume, is_main, stop, on_checkpoint, log) -> LoopState:
    here = distributed.world()  # a world of one outside torchrun (docs/distributed.md)
    distributed.check_config(config, here)
    is_main = is_main and here.is_main
    log = log if is_main else None
    device = here.device(resolve_device(config.device))
    torch.manual_seed(config.seed)
    model = build_model(config, dataset).to(device)
    precision = Precision(config.precision, device)
    state, rng = LoopState(lr=config.lr), None
    optimizer = make_optimizer(config, model, state.lr)
    checkpoints = run_dir / "checkpoints"
    if resume:
        state, rng = _restore(checkpoints / "last.pt", model, optimizer, device, precision)
    runner = distributed.replicate(model, here, config, rng, state.step)  # DDP, or the model itself
    train_data, valid_data = batches_for(dataset.splits["train"]), batches_for(dataset.splits["valid"])
    steps_per_epoch = len(train_data.plan(config.batch_size, min_size=here.min_batch()))
    strategy = make_strategy(config, model, optimizer, train_data, runner, precision)

    def save(name: str) -> None:
        rng = distributed.checkpoint_rng(runner)  # every rank's streams (collective under DDP)
        if is_main:
            save_checkpoint(checkpoints / name, _snapshot(model, optimizer, state, config, rng, precision))
            if on_checkpoint is not None:
                on_checkpoint()

    def stop_if_asked(in_epoch: bool) -> None:
        if stop is not None and stop.requested:
            if in_epoch:
                save("last.pt")
            raise Interrupted(f"interrupted at epoch {state.epoch + int(in_epoch)} step {state.step}; "
                              f"continue with: duvae train --resume {run_dir}")

    while state.epoch < config.epochs and state.decays < config.max_decays:
        plan = train_data.plan(config.batch_size, np.random.default_rng([config.seed, state.epoch]),
                               min_size=here.min_batch())  # the global plan; each rank takes its shard
        model.train()
        shown = {}  # the loss and KL the progress line shows
        with reporter.task(f"epoch {state.epoch + 1}/{config.epochs}", total=len(train_data)) as task:
            task.advance(sum(len(b) for b in plan[: state.batch_in_epoch]))
            for indices in plan[state.batch_in_epoch:]:
                batch = train_data.batch(indices, train=True).to(device)  # global: DDP trains each rank's shard
                kl_weight = kl_weight_at(config, state.step, steps_per_epoch)
                started = time.perf_counter()
                out = strategy.step(batch, kl_weight, state)  # under DDP: rec, kl and loss of the global batch
                if not torch.isfinite(out.loss):
                    raise NonFiniteLoss(_nan_message(state, out, checkpoints / "last.pt"))
                state.step += 1
                state.batch_in_epoch += 1
                seconds = time.perf_counter() - started
                _accumulate(state.sums, out, model, len(out.rec), seconds, kl_weight)
                if log is not None:
                    log(step_record(state, out, kl_weight, seconds))
                if device.type == "cpu" or state.step % SHOW_EVERY == 0:  # a GPU: read back now and then
                    shown.update(loss=out.loss.item(), kl=out.kl.mean().item())
                task.advance(len(out.rec), **shown)
                if config.checkpoint_every and state.step % config.checkpoint_every == 0:
                    save("last.pt")
                stop_if_asked(in_epoch=True)
        metrics = validate(model, valid_data, config.eval_batch_size, seed=config.seed + state.epoch,
                           device=device, kl_weight=kl_weight_at(config, state.step - 1, steps_per_epoch),
                           mi_batch_size=strategy.mi_batch_size)  # weight of the last step (DU's floor)
        improved = metrics["loss"] < state.best_loss
        if improved:
            state.best_loss = metrics["loss"]
        state.history.append(_history_row(state, metrics, config))
        if log is not None:
            log(epoch_record(state, metrics))
        note = strategy.end_epoch(state, metrics[strategy.mi_key])  # aggressive: ends at the first fall of MI
        if note and is_main:
            reporter.log(note)
        decays = state.decays
        _plateau(config, state, metrics["loss"], model, optimizer, checkpoints / "best.pt", device)
        if state.decays != decays:
            distributed.sync_from_main(model)  # best.pt may be on rank 0's disk only
        state.epoch += 1
        state.batch_in_epoch, state.sums = 0, {}
        if improved:
            save("best.pt")
        save("last.pt")
        if is_main:
            write_history(run_dir / "history.csv", state.history)
            reporter.log(_epoch_line(state.history[-1]))
            _warn_bn_eps(reporter, state.history[-1], config)
        if state.epoch < config.epochs:
            stop_if_asked(in_epoch=False)
    return state


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
            if best_path.exists():  # a worse epoch is never the best one: best.pt is current
                model.load_state_dict(load_checkpoint(best_path, device)["model"])
            fresh = make_optimizer(config, model, state.lr)
            optimizer.load_state_dict(fresh.state_dict())
    else:
        state.not_improved, state.ref_loss = 0, loss


def _accumulate(sums: dict, out, model, n: int, seconds: float, kl_weight: float) -> None:
    """Running sums of the epoch. The loss terms stay float64 tensors on the model's device (no
    host synchronisation per step on a GPU); `_history_row` reads them at the epoch's end."""
    for key, value in (("loss", out.loss.detach().double() * n), ("rec", out.rec.detach().sum().double()),
                       ("kl", out.kl.detach().sum().double()), ("n", n), ("seconds", seconds), ("batches", 1)):
        sums[key] = sums.get(key, 0.0) + value
    sums["kl_weight"] = kl_weight
    pre_bn = model.regularizer.pre_bn_variance()
    if pre_bn is not None:
        sums["pre_bn_var"] = sums.get("pre_bn_var", 0.0) + pre_bn.detach().double()


def _history_row(state: LoopState, val: dict, config: TrainConfig) -> dict:
    s = state.sums
    row = {
        "epoch": state.epoch + 1, "step": state.step, "kl_weight": s.get("kl_weight", float("nan")),
        "lr": state.lr, "train_loss": float(s["loss"]) / s["n"], "train_rec": float(s["rec"]) / s["n"],
        "train_kl": float(s["kl"]) / s["n"], "val_loss": val["loss"], "val_rec": val["rec"],
        "val_kl": val["kl"], "val_mi": val["mi"], "val_au": val["au"], "val_ppl": val["ppl"],
        "pre_bn_var_min": float("nan"), "pre_bn_var_mean": float("nan"),
        "seconds": s["seconds"], "sentences_per_s": s["n"] / max(s["seconds"], 1e-9),
    }
    if "pre_bn_var" in s:
        per_dim = s["pre_bn_var"] / s["batches"]
        row.update(pre_bn_var_min=float(per_dim.min()), pre_bn_var_mean=float(per_dim.mean()))
    return row


def _epoch_line(row: dict) -> str:
    return (f"epoch {row['epoch']}: val loss {row['val_loss']:.3f} rec {row['val_rec']:.3f} "
            f"kl {row['val_kl']:.3f} mi {row['val_mi']:.3f} au {row['val_au']}"
            + ("" if math.isnan(row["val_ppl"]) else f" ppl {row['val_ppl']:.2f}")  # NaN: images
            + f" | kl_weight {row['kl_weight']:.3f} lr {row['lr']:.4g} | {row['sentences_per_s']:.0f} "
            + ("img/s" if math.isnan(row["val_ppl"]) else "sent/s"))


def _warn_bn_eps(reporter: Reporter, row: dict, config: TrainConfig) -> None:
    if row["pre_bn_var_min"] < 10 * config.bn_eps:  # NaN (no BN) compares False
        reporter.log(f"warning: epoch {row['epoch']}: pre-BN variance of the means fell to "
                     f"{row['pre_bn_var_min']:.2e} < 10 x BN eps; BN no longer bounds the KL "
                     "(reference-spec §7)")


def _nan_message(state: LoopState, out, last: Path) -> str:
    keep = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint was written yet"
    terms = {name: getattr(out, name).mean().item() for name in ("loss", "rec", "kl", "kl_term")}
    return (f"non-finite loss at step {state.step + 1} (epoch {state.epoch + 1}): "
            + ", ".join(f"{k} {v}" for k, v in terms.items()) + f"; {keep}")


def _snapshot(model, optimizer, state: LoopState, config: TrainConfig, rng: dict | None = None,
              precision: Precision = FP32) -> dict:
    """`rng`: the data-parallel streams (distributed.checkpoint_rng); else torch's own state."""
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
