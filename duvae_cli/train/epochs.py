"""The epoch's bookkeeping: running sums of the training steps, the progress line's moving averages,
the history.csv row, the epoch's log line and its warnings (train/loop.py calls them)."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from duvae_cli.progress import Reporter

SMOOTHING = 0.95  # weight of the earlier steps in the progress line's exponential moving averages


def smoothed(ema: torch.Tensor | None, out) -> torch.Tensor:
    """(loss, KL) of the steps so far in the epoch as exponential moving averages, a (2,) tensor on the
    model's device (no host synchronisation): one batch's loss jumps with its sentences' lengths."""
    now = torch.stack([out.loss.detach().float(), out.kl.detach().float().mean()])
    return now if ema is None else ema * SMOOTHING + now * (1 - SMOOTHING)


def progress_fields(ema: torch.Tensor) -> dict:
    """What the progress line shows, named as what it is."""
    loss, kl = ema.tolist()
    return {f"loss (EMA {SMOOTHING})": loss, f"kl (EMA {SMOOTHING})": kl}


def accumulate(sums: dict, out, model, n: int, seconds: float, kl_weight: float) -> None:
    """Running sums of the epoch. The loss terms stay float64 tensors on the model's device (no
    host synchronisation per step on a GPU); `_history_row` reads them at the epoch's end."""
    for key, value in (("loss", out.loss.detach().double() * n), ("rec", out.rec.detach().sum().double()),
                       ("kl", out.kl.detach().sum().double()), ("n", n), ("seconds", seconds), ("batches", 1)):
        sums[key] = sums.get(key, 0.0) + value
    sums["kl_weight"] = kl_weight
    pre_bn = model.regularizer.pre_bn_variance()
    if pre_bn is not None:
        sums["pre_bn_var"] = sums.get("pre_bn_var", 0.0) + pre_bn.detach().double()


def history_row(state, val: dict) -> dict:
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


def epoch_line(row: dict) -> str:
    return (f"epoch {row['epoch']}: val loss {row['val_loss']:.3f} rec {row['val_rec']:.3f} "
            f"kl {row['val_kl']:.3f} mi {row['val_mi']:.3f} au {row['val_au']}"
            + ("" if math.isnan(row["val_ppl"]) else f" ppl {row['val_ppl']:.2f}")  # NaN: images
            + f" | kl_weight {row['kl_weight']:.3f} lr {row['lr']:.4g} | {row['sentences_per_s']:.0f} "
            + ("img/s" if math.isnan(row["val_ppl"]) else "sent/s"))


def warn_bn_eps(reporter: Reporter, row: dict, config) -> None:
    if row["pre_bn_var_min"] < 10 * config.bn_eps:  # NaN (no BN) compares False
        reporter.log(f"warning: epoch {row['epoch']}: pre-BN variance of the means fell to "
                     f"{row['pre_bn_var_min']:.2e} < 10 x BN eps; BN no longer bounds the KL "
                     "(reference-spec §7)")


def nan_message(state, out, last: Path) -> str:
    keep = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint was written yet"
    terms = {name: getattr(out, name).mean().item() for name in ("loss", "rec", "kl", "kl_term")}
    return (f"non-finite loss at step {state.step + 1} (epoch {state.epoch + 1}): "
            + ", ".join(f"{k} {v}" for k, v in terms.items()) + f"; {keep}")
