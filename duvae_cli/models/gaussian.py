"""Diagonal-Gaussian helpers shared by the models and the metrics. Units: nats."""

from __future__ import annotations

import math

import torch

LOG_2PI = math.log(2 * math.pi)


def kl_standard_normal(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) per dimension: 0.5 (mu^2 + s^2 - log s^2 - 1). Shape of `mean`."""
    return 0.5 * (mean.pow(2) + logvar.exp() - logvar - 1.0)


def log_normal(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mean, exp(logvar)) summed over the last dimension."""
    return -0.5 * (LOG_2PI + logvar + (z - mean).pow(2) / logvar.exp()).sum(-1)


def log_standard_normal(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over the last dimension."""
    return -0.5 * (LOG_2PI + z.pow(2)).sum(-1)


def sample(mean: torch.Tensor, logvar: torch.Tensor, n: int | None = None,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """Reparameterised draws: (..., D) or, with `n`, (..., n, D)."""
    if n is not None:
        mean, logvar = mean.unsqueeze(-2), logvar.unsqueeze(-2)
        shape = (*mean.shape[:-2], n, mean.shape[-1])
    else:
        shape = mean.shape
    eps = torch.randn(shape, generator=generator, dtype=mean.dtype, device=mean.device)
    return mean + eps * (0.5 * logvar).exp()
