"""Optimizer updates shared by the training loop and the training strategies (methods/): the
optimizer, the one gradient-clipping routine, the standard step and the step of one side only."""

from __future__ import annotations

import torch

from duvae_cli.runtime.precision import FP32, Precision


def make_optimizer(config, model: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr)
    return torch.optim.SGD(params, lr=lr)  # momentum 0, as the reference


def clip_gradients(grads: list[torch.Tensor], max_norm: float,
                   scaled: list[torch.Tensor] | None = None) -> torch.Tensor | float:
    """Scale `scaled` (default: `grads`) by min(1, max_norm / (norm + 1e-6)), norm being the global
    norm of `grads`, as torch.nn.utils.clip_grad_norm_ does, bit for bit; returns the norm.

    CPU: the norm is read once and the multiplication skipped when it is already within bounds (most
    steps). Other devices: the clamped scale stays on the device, so the step waits for no host
    synchronisation."""
    scaled = grads if scaled is None else scaled
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    if grads and grads[0].device.type != "cpu":
        torch._foreach_mul_(scaled, torch.clamp(max_norm / (norm + 1e-6), max=1.0))
        return norm
    coefficient = max_norm / (float(norm) + 1e-6)
    if coefficient < 1.0:
        torch._foreach_mul_(scaled, coefficient)
    return float(norm)


def train_step(model, optimizer, batch, kl_weight: float, clip: float, precision: Precision = FP32):
    """One update; a non-finite loss leaves the model untouched (the caller stops the run).
    `model` may be a train.parallel.DataParallelVAE; `precision` autocasts the forward pass."""
    with precision.autocast():
        out = model(batch, kl_weight)
    if torch.isfinite(out.loss):
        optimizer.zero_grad(set_to_none=True)
        precision.backward(out.loss)
        precision.unscale(optimizer)
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        out.grad_norm = clip_gradients(grads, clip)  # before clipping; logged
        precision.step(optimizer)
        model.after_step()
    return out


def update(model, optimizer, loss: torch.Tensor, parameters: list, clip: float,
           clip_over: list | None = None) -> None:
    """One optimizer step of `parameters` only: the others get no gradient, so the optimizer (SGD or
    Adam, which skip parameters without one) leaves them and their state bit-identical.

    The clip's norm is over the gradients of `parameters` and of `clip_over`: Agg-VAE passes every
    parameter, as He et al. clip all gradients (the side not stepped included) before stepping one
    side. The scale then applies to the stepped side's gradients."""
    own = {id(p) for p in parameters}
    others = [p for p in (clip_over or []) if id(p) not in own]
    grads = torch.autograd.grad(loss, [*parameters, *others], allow_unused=True)
    optimizer.zero_grad(set_to_none=True)
    for parameter, grad in zip(parameters, grads):
        parameter.grad = grad
    clip_gradients([g for g in grads if g is not None], clip, [p.grad for p in parameters if p.grad is not None])
    optimizer.step()
    model.after_step()
