"""The records the training loop hands its logger: plain dicts, one kind per moment.

    {"kind": "start", "step": s, "config": <config.json>}   before the first step (s: the first step to come)
    {"kind": "step",  "step": s, "epoch": e, "loss", "rec", "kl", "kl_weight", "lr", "grad_norm",
                      "examples_per_s"}                      every optimizer step (the tracker thins them)
    {"kind": "epoch", "step": s, "epoch": e, "row": <history.csv row>, "histograms": {name: (D,)}}
    {"kind": "final", "step": s, "config": <config.json>, "metrics": {name: float}}
    {"kind": "results", "step": s, "metrics": {name: float}}   (evaluate / classify)

Step values may be 0-d tensors: they are turned into floats only for the steps that are logged, so a
step that is not logged costs no device synchronisation.
"""

from __future__ import annotations

import math


def start_record(state, config: dict) -> dict:
    """Before the first step of this process (a new run, or a resumed one at `state.step`)."""
    return {"kind": "start", "step": state.step + 1, "config": config}


def step_record(state, out, kl_weight: float, seconds: float) -> dict:
    """After optimizer step `state.step` (1-based); `out` is the step's VAEOutput, `seconds` its time."""
    record = {"kind": "step", "step": state.step, "epoch": state.epoch + 1, "loss": out.loss.detach(),
              "rec": out.rec.detach().mean(), "kl": out.kl.detach().mean(), "kl_weight": kl_weight,
              "lr": state.lr, "examples_per_s": len(out.rec) / max(seconds, 1e-9)}
    if getattr(out, "grad_norm", None) is not None:  # the global norm before clipping
        record["grad_norm"] = out.grad_norm
    return record


def epoch_record(state, metrics: dict) -> dict:
    """After the validation pass of epoch `state.epoch + 1`; `metrics` is validate()'s result."""
    histograms = {}
    if metrics.get("kl_per_dim") is not None:
        histograms["val/kl_per_dim"] = metrics["kl_per_dim"]  # (D,) nats per dimension
    if "pre_bn_var" in state.sums:
        histograms["train/pre_bn_var"] = state.sums["pre_bn_var"] / state.sums["batches"]  # (D,)
    return {"kind": "epoch", "step": state.step, "epoch": state.epoch + 1, "row": state.history[-1],
            "histograms": histograms}


def step_scalars(record: dict) -> dict[str, float]:
    skip = ("kind", "step", "epoch")
    return {f"train/{k}": float(v) for k, v in record.items() if k not in skip}


def epoch_scalars(record: dict) -> dict[str, float]:
    """history.csv's row: `val_x` -> `val/x`, the rest -> `epoch/x`; NaN (e.g. PPL of images) dropped."""
    out = {}
    for key, value in record["row"].items():
        if key in ("epoch", "step") or not isinstance(value, (int, float)) or math.isnan(value):
            continue
        out[f"val/{key[4:]}" if key.startswith("val_") else f"epoch/{key}"] = float(value)
    return out


def run_tags(info: dict) -> dict[str, str]:
    """What identifies a run beyond its config, from its manifest: the duvae version and git commit,
    the dataset file's sha256 and each split's fingerprint (data/binding.py)."""
    splits = (info.get("data_binding") or {}).get("splits") or {}
    tags = {"duvae.version": info.get("duvae_version"), "duvae.git_sha": info.get("git_sha"),
            "mlflow.source.git.commit": info.get("git_sha"), "duvae.dataset_sha256": info.get("data_sha256"),
            **{f"duvae.split_sha256.{name}": value for name, value in sorted(splits.items())}}
    return {key: str(value) for key, value in tags.items() if value}


def hparams(config: dict) -> dict:
    """Config values as hyper-parameters: numbers, strings and booleans; None becomes "none"."""
    return {k: ("none" if v is None else v) for k, v in sorted(config.items())}


def evaluation_scalars(report) -> dict[str, float]:
    """`duvae evaluate`'s metrics (a metrics.EvalReport) as `evaluate/<split>/<metric>`."""
    split = report.identity["split"]
    return {f"evaluate/{split}/{k}": float(v) for k, v in report.metrics.items()
            if isinstance(v, (int, float)) and not math.isnan(v)}


def probe_scalars(payload: dict) -> dict[str, float]:
    """`duvae classify`'s JSON: test accuracy per label budget (or per drawings-per-character k)."""
    out = {}
    for row in payload["results"]:
        budget = f"labels_{row['labels']}" if "labels" in row else f"per_class_{row['per_class']}"
        out[f"classify/{budget}/accuracy"] = float(row["accuracy_mean"])
    return out
