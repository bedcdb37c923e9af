"""CR-VAE (Sinha & Dieng, NeurIPS 2021): consistency regularization of the encoder under a data
augmentation t. docs/training.md, "CR-VAE".

Per training example x and one augmented copy x~ = t(x), the loss (minimised) is

    [rec(x) + w KL(q(z|x) || p)] + [rec(x~) + w KL(q(z|x~) || p)] + lambda KL(q(z|x~) || q(z|x))

(the paper's objective, Eq. 3, negated: the ELBO of x, the ELBO of t(x), and the KL from the
augmented posterior to the original one, in that direction; gradients through both posteriors).
w is the run's KL weight (the code's beta_1 = beta_2 = 1 under annealing); lambda is `--cr-lambda`.
The first bracket is the VAE's own loss (`models/vae.py`); `extra_loss` returns the other two per
example and `VAE.forward` adds their batch mean in training only: validation, evaluation, probes and
figures see the plain model. The reported `rec` and `kl` stay those of x.

t is the official `simple` policy (sinhasam/CRVAE augmentations.py:8-11, torchvision RandomAffine),
`data/augment.py`: per image, a rotation U(-15, 15) degrees, an integer shift round(U(-0.05 W, 0.05 W))
pixels per axis and a scale U(0.9, 1.1), about the image centre, nearest-neighbour, zero fill; the
pixels stay 0/1. Its random numbers come from torch's global generator (saved in every checkpoint:
`--resume` is exact).
"""

from __future__ import annotations

import torch

from duvae_cli.data.augment import random_affine
from duvae_cli.methods.registry import Capabilities, Preset, register
from duvae_cli.models.gaussian import float32_region, widen
from duvae_cli.models.regularizer import Regularizer
from duvae_cli.options import Option


def gaussian_kl(mean_q: torch.Tensor, logvar_q: torch.Tensor, mean_p: torch.Tensor,
                logvar_p: torch.Tensor) -> torch.Tensor:
    """KL(N(mean_q, e^logvar_q) || N(mean_p, e^logvar_p)) per dimension, from log-variances (no ratio of
    variances that could overflow)."""
    log_ratio = logvar_q - logvar_p
    return 0.5 * (log_ratio.exp() + (mean_q - mean_p).pow(2) * torch.exp(-logvar_p) - log_ratio - 1.0)


@register("cr-vae")
class ConsistencyVAE(Regularizer):
    """CR-VAE (Sinha & Dieng 2021): in training, the ELBOs of x and of an augmented t(x) (small random
    rotations, shifts and scalings of the image) plus lambda times the KL from the posterior of t(x)
    to that of x."""

    options = (
        Option("cr_lambda", float, 1.0, "Weight lambda of the consistency KL, from the posterior of t(x) to that of x.",
               range="[0, 1000000]"),
        Option("cr_degrees", float, 15.0, "Largest rotation of the augmentation (degrees).", range="[0, 180]",
               flag=False),
        Option("cr_translate", float, 0.05, "Largest shift of the augmentation (fraction of the side).",
               range="[0, 1]", flag=False),
        Option("cr_scale_min", float, 0.9, "Smallest scale of the augmentation.", range="> 0", flag=False),
        Option("cr_scale_max", float, 1.1, "Largest scale of the augmentation.", range="> 0", flag=False),
    )
    # No presets: the option defaults are the augmentation of sinhasam/CRVAE (d9f8075) CRVAE/augmentations.py:8-11
    # (the `simple` policy); lambda = 1 is ours: the code's gamma 1e-3 (crvae.py:9-12) multiplies per-pixel-mean
    # units and cannot be carried over (docs/training.md, "CR-VAE").
    presets: dict[str, Preset] = {}
    # images only: no augmentation is defined for sentences. One process: the data-parallel loss
    # bookkeeping (train/parallel.py) does not carry the extra term. bf16 parity not measured.
    capabilities = Capabilities(data=("image",), multi_process=False)

    def __init__(self, latent_dim: int, cr_lambda: float = 1.0, cr_degrees: float = 15.0,
                 cr_translate: float = 0.05, cr_scale_min: float = 0.9, cr_scale_max: float = 1.1):
        super().__init__()
        self.cr_lambda, self.cr_degrees, self.cr_translate = cr_lambda, cr_degrees, cr_translate
        self.cr_scale = (cr_scale_min, cr_scale_max)

    @classmethod
    def check(cls, config) -> str | None:
        if config.cr_scale_min > config.cr_scale_max:
            return f"cr_scale_min {config.cr_scale_min} is above cr_scale_max {config.cr_scale_max}"
        if config.strategy == "savi":
            return ("--model cr-vae adds its term in the VAE's forward pass, which --strategy savi does not "
                    "use (it computes the loss of refined posteriors); use standard or aggressive")
        return None

    def augment(self, images: torch.Tensor) -> torch.Tensor:
        return random_affine(images, self.cr_degrees, self.cr_translate, self.cr_scale)

    def extra_loss(self, vae, x, posterior, kl_weight: float) -> torch.Tensor:
        """(B,): rec(t(x)) + w KL(q(z|t(x)) || p) + lambda KL(q(z|t(x)) || q(z|x)), nats per image."""
        augmented = self.augment(x)
        other = vae.encode(augmented, kl_weight)
        out = vae.elbo(augmented, other, kl_weight)
        with float32_region(other.mean.device):
            consistency = gaussian_kl(other.mean, other.logvar, posterior.mean, posterior.logvar).sum(-1)
            return widen(out.rec) + kl_weight * out.kl_term + self.cr_lambda * consistency
