"""beta-VAE (Higgins et al. 2017) as He et al. ran it: the KL term weighted by a constant beta."""

from __future__ import annotations

from duvae_cli.methods.registry import Capabilities, Preset, register
from duvae_cli.models.regularizer import Regularizer
from duvae_cli.options import Option


@register("beta")
class Beta(Regularizer):
    """beta-VAE: the KL term weighted by a constant beta (presets switch annealing off)."""

    options = (Option("beta", float, 0.4, "Constant KL weight (0.4 on Yahoo and Yelp, reference-spec §4).",
                      range=">= 0"),)
    presets = {"*": Preset("He et al.'s beta-VAE runs: a constant weight, no annealing (reference-spec §4)",
                           kl_start=1.0, warm_up=0.0),
               "omniglot": Preset("beta 0.8 on Omniglot (reference-spec §4)", beta=0.8),
               "mnist": Preset("Omniglot's value", beta=0.8)}
    capabilities = Capabilities(bf16={"text": (
        "benchmarks/precision_parity.py synthetic --models beta,fb,delta, 3 seeds:"
        " every metric within seed noise (docs/benchmarks.md, 2026-12-02)")})

    def __init__(self, latent_dim: int, beta: float = 0.4):
        super().__init__()
        self.beta = beta

    def kl_term(self, kl, mean, logvar):
        return self.beta * kl.sum(-1)
