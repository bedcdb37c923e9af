"""One optimizer update, shared by the loop and the training strategies (train/strategies.py), so
neither imports the other."""

from __future__ import annotations

import torch

from duvae_cli.train.precision import FP32, Precision


def train_step(model, optimizer, batch, kl_weight: float, clip: float, precision: Precision = FP32):
    """One update; a non-finite loss leaves the model untouched (the caller stops the run).
    `model` may be a distributed.DataParallelVAE; `precision` autocasts the forward pass."""
    with precision.autocast():
        out = model(batch, kl_weight)
    if torch.isfinite(out.loss):
        optimizer.zero_grad(set_to_none=True)
        precision.backward(out.loss)
        precision.unscale(optimizer)
        out.grad_norm = clip_gradients(model.parameters(), clip)  # before clipping; logged
        precision.step(optimizer)
        model.after_step()
    return out


def clip_gradients(parameters, max_norm: float) -> torch.Tensor | float:
    """torch.nn.utils.clip_grad_norm_, bit for bit; returns the norm before clipping.

    CPU: without the pass over every gradient that multiplies by exactly 1.0 when the norm is already
    within bounds (most steps); reading the norm costs nothing there. Other devices: clip_grad_norm_
    itself, whose clamped scale stays on the device, so the step waits for no host synchronisation."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if grads and grads[0].device.type != "cpu":
        return torch.nn.utils.clip_grad_norm_(grads, max_norm, foreach=True)
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    coefficient = max_norm / (float(norm) + 1e-6)
    if coefficient < 1.0:
        torch._foreach_mul_(grads, coefficient)
    return float(norm)
