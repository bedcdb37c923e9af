"""BN-VAE (Zhu et al. 2020): BatchNorm on the posterior means with every scale frozen at gamma."""

from __future__ import annotations

from duvae_cli.methods.registry import Capabilities, Preset, register
from duvae_cli.models.regularizer import BN_EPS, GAMMA, BatchNormMeans, Regularizer


@register("bn")
class BN(Regularizer):
    """BN-VAE (Zhu et al. 2020): BN on the means with every scale frozen at gamma, shift learnable."""

    uses_batch_norm = True
    options = (GAMMA, BN_EPS)
    presets = {"omniglot": Preset("BN-VAE's Omniglot gamma (reference-spec §4)", gamma=0.5),
               "mnist": Preset("Omniglot's value", gamma=0.5)}
    capabilities = Capabilities(fp32_because={
        "text": "bf16 moves BN-VAE's short-yelp probe accuracy beyond seed noise (docs/benchmarks.md)"})

    def __init__(self, latent_dim: int, gamma: float = 0.6, bn_eps: float = 1e-5):
        super().__init__()
        self.bn = BatchNormMeans(latent_dim, gamma, learnable_scale=False, eps=bn_eps)

    def posterior(self, mean, logvar, kl_weight):
        return self.bn(mean), logvar
