"""The posterior regularizer's interface, and the BatchNorm on the means that BN-VAE and DU-VAE share.

A regularizer has two hooks, and the VAE calls them in one place (`vae.py`):

- `posterior(mean, logvar, kl_weight)` reshapes the encoder's posterior (BN, DU, delta);
- `kl_term(kl, mean, logvar)` turns the per-dimension KL (B, D) into the per-example KL term of the
  loss (beta, free bits); the default is the plain sum.

`after_step()` runs after every optimizer step (DU rescales its BN scales there).

Methods that change more than the posterior use three more hooks, neutral here:
`decoder_for(config, kind, vocab_size)` picks another decoder (LIDVAE; config/build.py),
`extra_loss(vae, x, posterior, kl_weight)` adds a training-only term (CR-VAE; vae.py) and the
classmethod `check(config)` refuses a config the method cannot run (config/resolve.py). The
regularizers themselves are methods, one file each in duvae_cli/methods/ (docs/extending.md).
"""

from __future__ import annotations

import torch
from torch import nn

from duvae_cli.options import Option


class Regularizer(nn.Module):
    """The plain sum of the KL per dimension, the posterior as the encoder gives it."""

    name = "base"
    uses_batch_norm = False  # text encoders of BN-style models keep PyTorch's default initialisation
    options: tuple[Option, ...] = ()  # constructor keyword arguments, one config field each
    presets: dict[str, dict] = {}  # dataset (or "*": every dataset) -> Preset (methods/registry.py)

    @classmethod
    def check(cls, config) -> str | None:
        """Why `config` cannot run with this method (one line), or None."""
        return None

    def decoder_for(self, config, kind: str, vocab_size: int) -> nn.Module | None:
        """The decoder this method needs on `kind` ("text", "image") data; None: the default one."""
        return None

    def extra_loss(self, vae, x, posterior, kl_weight: float) -> torch.Tensor | None:
        """A training-only term per example (B,), whose batch mean `VAE.forward` adds to the loss;
        None: nothing to add."""
        return None

    def posterior(self, mean: torch.Tensor, logvar: torch.Tensor, kl_weight: float):
        return mean, logvar

    def kl_term(self, kl: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return kl.sum(-1)

    def after_step(self) -> None:
        pass

    def means_norm(self) -> "BatchNormMeans | None":
        """The BatchNorm on the means, if the regularizer has one (BN-VAE, DU-VAE)."""
        return next((m for m in self.modules() if isinstance(m, BatchNormMeans)), None)

    def pre_bn_variance(self) -> torch.Tensor | None:
        """Per-dimension batch variance of the means before BN (last training batch), if any."""
        norm = self.means_norm()
        return None if norm is None else norm.last_batch_var


# The options of the BN on the means (the methods bn and du declare them; du with its own default).
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
