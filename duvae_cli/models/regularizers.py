"""Posterior regularizers: the registry and the classic baselines (DU-VAE lives in `du.py`).

A regularizer has two hooks, and the VAE calls them in one place (`vae.py`):

- `posterior(mean, logvar, kl_weight)` reshapes the encoder's posterior (BN, DU, delta);
- `kl_term(kl, mean, logvar)` turns the per-dimension KL (B, D) into the per-example KL term of the
  loss (beta, free bits); the default is the plain sum.

`after_step()` runs after every optimizer step (DU rescales its BN scales there).

Each regularizer declares its options next to its code (`options`: name, type, default, help, range;
`presets`: the paper's values per dataset, "*" for every dataset); the config, the `duvae train`
flags, validation and the docs are derived from them (duvae_cli/options.py, docs/extending.md).
"""

from __future__ import annotations

import inspect
import math

import torch
from torch import nn

from duvae_cli.options import Option, check_declarations

REGULARIZERS: dict[str, type["Regularizer"]] = {}


def register(name: str):
    def add(cls):
        check_declarations(cls.options, f"regularizer {name}")
        cls.name = name
        REGULARIZERS[name] = cls
        return cls

    return add


def build_regularizer(name: str, latent_dim: int, **options) -> "Regularizer":
    """Build a registered regularizer, passing only the options its constructor takes."""
    if name not in REGULARIZERS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(REGULARIZERS)}")
    cls = REGULARIZERS[name]
    accepted = inspect.signature(cls.__init__).parameters
    return cls(latent_dim, **{k: v for k, v in options.items() if k in accepted and v is not None})


class Regularizer(nn.Module):
    name = "base"
    uses_batch_norm = False  # text encoders of BN-style models keep PyTorch's default initialisation
    options: tuple[Option, ...] = ()  # constructor keyword arguments, one config field each
    presets: dict[str, dict] = {}  # dataset (or "*": every dataset) -> config values when chosen

    def posterior(self, mean: torch.Tensor, logvar: torch.Tensor, kl_weight: float):
        return mean, logvar

    def kl_term(self, kl: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return kl.sum(-1)

    def after_step(self) -> None:
        pass

    def pre_bn_variance(self) -> torch.Tensor | None:
        """Per-dimension batch variance of the means before BN (last training batch), if any."""
        bn = getattr(self, "bn", None)
        return None if bn is None else bn.last_batch_var


@register("vae")
class Plain(Regularizer):
    """The plain VAE; collapse-avoidance comes only from the KL-annealing schedule."""

    def __init__(self, latent_dim: int):
        super().__init__()


@register("beta")
class Beta(Regularizer):
    """beta-VAE: the KL term weighted by a constant beta (presets switch annealing off)."""

    options = (Option("beta", float, 0.4, "Constant KL weight.", range=">= 0"),)
    presets = {"*": dict(kl_start=1.0, warm_up=0.0), "omniglot": dict(beta=0.8), "mnist": dict(beta=0.8)}

    def __init__(self, latent_dim: int, beta: float = 0.4):
        super().__init__()
        self.beta = beta

    def kl_term(self, kl, mean, logvar):
        return self.beta * kl.sum(-1)


@register("fb")
class FreeBits(Regularizer):
    """Free bits (Kingma et al. 2016): in training, each dimension's batch-mean KL is clamped from
    below at lambda, and sum_d max(lambda, mean_batch KL_d) is every example's KL term."""

    options = (Option("fb_lambda", float, 0.1, "Per-dimension KL floor (nats).", range=">= 0"),)

    def __init__(self, latent_dim: int, fb_lambda: float = 0.1):
        super().__init__()
        self.fb_lambda = fb_lambda

    def kl_term(self, kl, mean, logvar):
        if not self.training:
            return kl.sum(-1)
        per_dim = kl.mean(0).clamp(min=self.fb_lambda)  # (D,)
        return per_dim.sum().expand(kl.shape[0])


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

    options = (Option("delta", float, 0.1, "Per-dimension minimum KL (nats).", range="> 0"),)

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


GAMMA = Option("gamma", float, 0.6, "Scale (RMS) of the BN on the means.", range="> 0")
BN_EPS = Option("bn_eps", float, 1e-5, "BatchNorm epsilon.", range="> 0", flag=False, always=True)


class BatchNormMeans(nn.Module):
    """BatchNorm1d over the posterior means with per-dimension scale (init gamma) and shift (init 0).

    Records the pre-BN batch variance of the means in training: when the encoder shrinks it below
    BN's eps, BN no longer normalises and its KL guarantee is gone (reference-spec §7)."""

    def __init__(self, latent_dim: int, gamma: float, learnable_scale: bool, eps: float = 1e-5):
        super().__init__()
        self.gamma = gamma
        self.bn = nn.BatchNorm1d(latent_dim, eps=eps)
        with torch.no_grad():
            self.bn.weight.fill_(gamma)
        self.bn.weight.requires_grad_(learnable_scale)
        self.last_batch_var: torch.Tensor | None = None

    def forward(self, mean: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.last_batch_var = mean.detach().var(0, unbiased=False)
        return self.bn(mean)

    @torch.no_grad()
    def rescale_to_rms(self) -> None:
        """w <- w * gamma / sqrt(mean_d w_d^2): the RMS of the scales is exactly gamma again."""
        weight = self.bn.weight
        weight.mul_(self.gamma / weight.pow(2).mean().sqrt().clamp_min(1e-12))


@register("bn")
class BN(Regularizer):
    """BN-VAE (Zhu et al. 2020): BN on the means with every scale frozen at gamma, shift learnable."""

    uses_batch_norm = True
    options = (GAMMA, BN_EPS)
    presets = {"omniglot": dict(gamma=0.5), "mnist": dict(gamma=0.5)}

    def __init__(self, latent_dim: int, gamma: float = 0.6, bn_eps: float = 1e-5):
        super().__init__()
        self.bn = BatchNormMeans(latent_dim, gamma, learnable_scale=False, eps=bn_eps)

    def posterior(self, mean, logvar, kl_weight):
        return self.bn(mean), logvar
