"""BatchNorm over the global batch of data-parallel training (docs/distributed.md).

`convert_batch_norm(model)` swaps every BatchNorm of a model (the BN on the posterior means of `bn`,
`du` and the IAF variants, and the image encoders' BatchNorm2d) for a `GlobalBatchNorm` that keeps
its parameters and buffers, so checkpoints and the optimizer are unaffected.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def _data_parallel() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class AllReduceSum(torch.autograd.Function):
    """y = sum over ranks of x, differentiably: the gradient of x is the sum over ranks of the
    gradients of y (each rank's loss depends on every rank's x through y)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = x.clone()
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class GlobalBatchNorm(_BatchNorm):
    """BatchNorm whose training statistics are those of the global batch, all ranks' shards together.

    torch.nn.SyncBatchNorm raises for CPU tensors (torch 2.13), so this is the gloo-friendly version
    (used on every device: one code path, tested on the CPU). The shard sums go through
    an autograd-aware all_reduce (`AllReduceSum`), whose backward all-reduces the gradients, so
    every example's gradient includes its effect on the global mean and variance. In eval mode it
    is plain BatchNorm on the running statistics. Computed in float32 (float64 for float64 inputs),
    also under autocast. Two small all-reduces per layer and step: the sums (mean), then the centred
    squares (variance, without the cancellation of E[x^2] - E[x]^2)."""

    last_global_var: torch.Tensor | None = None

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected a (B, C, ...) input, got {input.dim()}-d")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not (self.training and _data_parallel()):
            return super().forward(input)
        x = input.to(torch.promote_types(input.dtype, torch.float32))  # autocast: statistics in float32
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        count = torch.tensor([x.numel() / x.shape[1]], dtype=x.dtype, device=x.device)
        sums = AllReduceSum.apply(torch.cat([x.sum(dims), count]))  # (C + 1,) summed over ranks
        total = sums[-1].detach()
        mean = sums[:-1] / total  # (C,)
        centred = x - mean.view(shape)
        var = AllReduceSum.apply(centred.pow(2).sum(dims)) / total  # biased, as BatchNorm normalises
        self._track(mean.detach(), var.detach(), float(total))
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out.to(torch.promote_types(input.dtype, torch.float32))  # autocast: float32 out

    @torch.no_grad()
    def _track(self, mean: torch.Tensor, var: torch.Tensor, count: float) -> None:
        self.last_global_var = var
        if not self.track_running_stats:
            return
        self.num_batches_tracked.add_(1)
        momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        self.running_mean.mul_(1 - momentum).add_(momentum * mean)
        self.running_var.mul_(1 - momentum).add_(momentum * var * count / max(count - 1, 1.0))


def convert_batch_norm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm in `module` by a GlobalBatchNorm that shares its parameters and
    buffers (the optimizer's references stay valid); returns `module`."""
    for name, child in module.named_children():
        if isinstance(child, _BatchNorm) and not isinstance(child, GlobalBatchNorm):
            synced = GlobalBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                     child.track_running_stats)
            for attribute in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
                setattr(synced, attribute, getattr(child, attribute))
            synced.train(child.training)
            setattr(module, name, synced)
        else:
            convert_batch_norm(child)
    return module
