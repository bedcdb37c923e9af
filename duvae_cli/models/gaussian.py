"""Diagonal-Gaussian helpers shared by the models and the metrics. Units: nats."""

from __future__ import annotations

import math

import torch

LOG_2PI = math.log(2 * math.pi)


def float32_region(device: torch.device):
    """Autocast off inside: in a bf16 (or fp16) run the posterior's parameters, its regularizer, the
    sample z and the KL stay float32, at negligible cost. bf16 keeps 8 significant bits, so a mean
    is rounded by up to ~0.4% of its size; BatchNorm then magnifies that rounding wherever the means
    of a batch differ by little (BN-VAE, DU-VAE), and the KL would be rounded likewise."""
    return torch.autocast(device.type, enabled=False)


def widen(t: torch.Tensor) -> torch.Tensor:
    """`t` in float32 when it is bf16/fp16; float32 and float64 tensors as they are."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


def posterior_head(head: torch.nn.Module, features: torch.Tensor,
                   sizes: list[int]) -> tuple[torch.Tensor, ...]:
    """An encoder's last layer, in float32 even under autocast: `head(features)` split into `sizes`
    along the last dimension, i.e. (mean, raw logvar) and a flow's context if any."""
    with float32_region(features.device):
        return tuple(head(widen(features)).split(sizes, dim=-1))


def kl_standard_normal(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) per dimension: 0.5 (mu^2 + s^2 - log s^2 - 1). Shape of `mean`."""
    return 0.5 * (mean.pow(2) + logvar.exp() - logvar - 1.0)


def log_normal(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mean, exp(logvar)) summed over the last dimension."""
    return -0.5 * (LOG_2PI + logvar + (z - mean).pow(2) / logvar.exp()).sum(-1)


def log_standard_normal(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over the last dimension."""
    return -0.5 * (LOG_2PI + z.pow(2)).sum(-1)


def draw(mean: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor,
         score_dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """z = mean + sigma eps (reparameterised) and log N(z; mean, sigma^2) per coordinate, the one
    place duvae draws z from a diagonal Gaussian and scores it. Shapes broadcast (e.g. mean (B, 1, D)
    with eps (B, K, D)). The score uses (z - mean)^2 / sigma^2 = eps^2 exactly (no cancellation),
    computed in `score_dtype` (e.g. float64 for IW-NLL's log-weights) when given."""
    z = mean + eps * (0.5 * logvar).exp()
    if score_dtype is not None:
        logvar, eps = logvar.to(score_dtype), eps.to(score_dtype)
    return z, -0.5 * (LOG_2PI + logvar + eps.pow(2))


def sample(mean: torch.Tensor, logvar: torch.Tensor, n: int | None = None,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """Reparameterised draws: (..., D) or, with `n`, (..., n, D)."""
    if n is not None:
        mean, logvar = mean.unsqueeze(-2), logvar.unsqueeze(-2)
        shape = (*mean.shape[:-2], n, mean.shape[-1])
    else:
        shape = mean.shape
    eps = torch.randn(shape, generator=generator, dtype=mean.dtype, device=mean.device)
    return draw(mean, logvar, eps)[0]
