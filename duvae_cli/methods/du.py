"""DU-VAE (Shen et al., IJCAI 2021): Dropout on the posterior variances, BN on the posterior means.

The whole method is this file. Given the encoder's raw posterior (mean, log-variance):

- **Uncertainty** (Sec. 3.1): every variance gets the floor alpha = 1/(2 pi e), the variance of a
  Gaussian with differential entropy 0, so no dimension can become certain. Added once the KL
  weight has reached 1 (training and validation), as the code behind the paper's tables does
  (`floor_during_warmup` adds it from step 0); evaluation of a trained model (weight 1) always has it.
- **Dropout on variances** (Eq. 6): in training, sigma2_hat = g (sigma2 - alpha) + alpha with
  g ~ Bernoulli(p) / p per example and dimension; p is the *keep* probability. A dropped entry is
  pinned to the floor, which raises the expected KL of the batch and keeps dimensions in use
  (Proposition 1). Off while the KL weight is still annealing, as in the code behind the paper.
- **Diversity** (Sec. 3.2): BatchNorm on the means with learnable per-dimension scales whose
  root-mean-square is rescaled to gamma after every optimizer step (Algorithm 1), so the batch
  second moment of the means, and with it the expected KL, cannot fall below gamma^2 / 2 per dim.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from duvae_cli.methods.registry import Capabilities, Preset, register
from duvae_cli.models.regularizer import BN_EPS, GAMMA, BatchNormMeans, Regularizer
from duvae_cli.options import Option

ALPHA = 1.0 / (2 * math.pi * math.e)  # variance with zero differential entropy


@register("du")
class DU(Regularizer):
    """DU-VAE: `gamma` = target RMS of the BN scales, `p` = keep probability of the variance dropout."""

    uses_batch_norm = True
    options = (
        dataclasses.replace(GAMMA, default=0.5),
        Option("p", float, 0.8, "Keep probability of the variance dropout.", range="(0, 1]"),
        Option("alpha_scale", float, 1.0, "Variance floor = alpha_scale / (2 pi e).", range=">= 0",
               flag=False, always=True),
        Option("dropout_during_warmup", bool, False, "Variance dropout from step 0 (Algorithm 1) instead "
               "of from the end of the KL warm-up (the reference code).", flag=False, always=True),
        Option("floor_during_warmup", bool, False, "Add the variance floor from step 0 instead of once "
               "the KL weight has reached 1 (the reference code).", flag=False, always=True),
        BN_EPS,
    )
    presets = {  # (gamma, p) of the paper (reference-spec §3.3)
        "yahoo": Preset("paper, best Yahoo NLL", gamma=0.6, p=0.8),
        "yelp": Preset("paper, best Yelp NLL", gamma=0.5, p=0.8),
        "short-yelp": Preset("paper Table 2's classification model", gamma=0.5, p=0.8),
        "synthetic": Preset("the reference's synthetic DU runs (gamma1.00, drop0.50 in their names)",
                            gamma=1.0, p=0.5),
        "omniglot": Preset("paper, best Omniglot NLL", gamma=0.5, p=0.9),
        "mnist": Preset("Omniglot's values", gamma=0.5, p=0.9),
    }
    capabilities = Capabilities(
        bf16={"image": "benchmarks/precision_parity.py omniglot --models du, 3 seeds x fp32/bf16:"
                       " every metric within seed noise (docs/benchmarks.md, 2026-12-07)"},
        fp32_because={"text": "bf16 moves DU-VAE's results beyond seed noise (docs/benchmarks.md)"})

    def __init__(self, latent_dim: int, gamma: float = 0.5, p: float = 0.8, alpha_scale: float = 1.0,
                 dropout_during_warmup: bool = False, bn_eps: float = 1e-5, floor_during_warmup: bool = False):
        super().__init__()
        if not 0.0 < p <= 1.0:
            raise ValueError(f"p is a keep probability in (0, 1], got {p}")
        self.p, self.alpha = p, ALPHA * alpha_scale
        self.dropout_during_warmup = dropout_during_warmup
        self.floor_during_warmup = floor_during_warmup
        self.bn = BatchNormMeans(latent_dim, gamma, learnable_scale=True, eps=bn_eps)

    def posterior(self, mean: torch.Tensor, logvar: torch.Tensor, kl_weight: float):
        mean = self.bn(mean)
        annealed = kl_weight >= 1.0  # the reference's `kl_weight == 1` branch: floor and dropout switch on
        if not (annealed or self.floor_during_warmup or self.dropout_during_warmup):
            return mean, logvar  # warm-up: no floor (Eq. 6's dropout needs it, so it brings it along)
        var = logvar.exp()  # (B, D), the variance above the floor
        if self.training and self.p < 1.0 and (annealed or self.dropout_during_warmup):
            keep = torch.bernoulli(torch.full_like(var, self.p))
            var = var * keep / self.p  # Eq. 6: g (sigma2 - alpha), E[g] = 1
        return mean, torch.log(var + self.alpha)

    def after_step(self) -> None:
        self.bn.rescale_to_rms()  # Algorithm 1: RMS of the scales back to gamma

