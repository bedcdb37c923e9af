"""Free bits (Kingma et al. 2016), the per-dimension batch-mean clamp that the reference uses for IAF+FB
(reference-spec §4 (c); design.md §2)."""

from __future__ import annotations

from duvae_cli.methods.registry import Capabilities, register
from duvae_cli.models.regularizer import Regularizer
from duvae_cli.options import Option


@register("fb")
class FreeBits(Regularizer):
    """Free bits (Kingma et al. 2016): in training, each dimension's batch-mean KL is clamped from
    below at lambda, and sum_d max(lambda, mean_batch KL_d) is every example's KL term."""

    options = (Option("fb_lambda", float, 0.1, "Per-dimension KL floor (nats; the paper's 0.1, §4.1).",
                      range=">= 0"),)
    capabilities = Capabilities(bf16={"text": (
        "benchmarks/precision_parity.py synthetic --models beta,fb,delta, 3 seeds:"
        " every metric within seed noise (docs/benchmarks.md, 2026-12-02)")})

    def __init__(self, latent_dim: int, fb_lambda: float = 0.1):
        super().__init__()
        self.fb_lambda = fb_lambda

    def kl_term(self, kl, mean, logvar):
        if not self.training:
            return kl.sum(-1)
        per_dim = kl.mean(0).clamp(min=self.fb_lambda)  # (D,)
        return per_dim.sum().expand(kl.shape[0])
