"""The plain VAE (Kingma & Welling 2014) with KL annealing (Bowman et al. 2016): the regularizer that
does nothing; the annealing schedule is general (docs/training.md)."""

from __future__ import annotations

from duvae_cli.methods.registry import Capabilities, register
from duvae_cli.models.regularizer import Regularizer


@register("vae")
class Plain(Regularizer):
    """The plain VAE; collapse-avoidance comes only from the KL-annealing schedule."""

    capabilities = Capabilities(bf16={"text": (
        "benchmarks/precision_parity.py synthetic, 3 seeds x fp32/bf16:"
        " every metric within seed noise (docs/benchmarks.md, 2026-12-01)")})

    def __init__(self, latent_dim: int):
        super().__init__()
