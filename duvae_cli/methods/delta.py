"""delta-VAE (Razavi et al. 2019) as parameterised in BN-VAE's code (reference-spec §4): every
dimension's KL is at least delta by construction of the posterior."""

from __future__ import annotations

import math

import torch

from duvae_cli.methods.registry import Capabilities, register
from duvae_cli.models.regularizer import Regularizer
from duvae_cli.options import Option


def delta_variance_bounds(delta: float) -> tuple[float, float]:
    """The two roots v_l < 1 < v_u of log v - v + 2 delta + 1 = 0: the variances whose KL at mean 0
    is exactly delta. Bisection in float64 (no sympy)."""

    def f(v: float) -> float:
        return math.log(v) - v + 2 * delta + 1

    def bisect(lo: float, hi: float) -> float:
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if (f(mid) < 0) == (f(lo) < 0) else (lo, mid)
        return 0.5 * (lo + hi)

    return bisect(1e-300, 1.0), bisect(1.0, 4 * delta + 10)


SQUASH_FLOOR_ARG = -math.log(49.0)  # 1 + e^-x reaches BN-VAE's clamp of 50 here


def delta_squash(x: torch.Tensor) -> torch.Tensor:
    """BN-VAE's squash 1 / clamp(1 + e^-x, 1, 50): the sigmoid, held at 1/50 = 0.02 (gradient 0) for
    x <= -log 49. Written as sigmoid(max(x, -log 49)), the same values, so that a very negative x
    gives gradient 0 rather than the 0 x inf = NaN of clamping an overflowed e^-x."""
    return torch.sigmoid(torch.clamp(x, min=SQUASH_FLOOR_ARG))


@register("delta")
class Delta(Regularizer):
    """delta-VAE (Razavi et al. 2019) as parameterised in BN-VAE's code: sigma is squashed into
    [sigma_l + 0.02 (sigma_u - sigma_l), sigma_u] (`delta_squash`) and mu chosen so every dimension's KL = delta + relu(raw_mu) / 2 >= delta."""

    options = (Option("delta", float, 0.1, "Per-dimension minimum KL (nats; the paper's 0.1, §4.1).", range="> 0"),)
    capabilities = Capabilities(bf16={"text": (
        "benchmarks/precision_parity.py synthetic --models beta,fb,delta, 3 seeds:"
        " every metric within seed noise (docs/benchmarks.md, 2026-12-02)")})

    def __init__(self, latent_dim: int, delta: float = 0.1):
        super().__init__()
        if delta <= 0:
            raise ValueError(f"delta must be > 0, got {delta}")
        v_low, v_high = delta_variance_bounds(delta)
        self.delta, self.sigma_low, self.sigma_high = delta, math.sqrt(v_low), math.sqrt(v_high)

    def posterior(self, mean, logvar, kl_weight):
        sigma = self.sigma_low + (self.sigma_high - self.sigma_low) * delta_squash(logvar)
        logvar = 2 * torch.log(sigma)
        # 0.5 (mu^2 + s^2 - log s^2 - 1) = delta + relu(raw)/2 (+ 5e-7 for a finite sqrt gradient)
        mean = torch.sqrt(2 * self.delta + 1 + logvar - sigma.pow(2) + torch.relu(mean) + 1e-6)
        return mean, logvar
