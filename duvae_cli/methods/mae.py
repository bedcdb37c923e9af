"""MAE, the mutual-posterior-divergence regularizer (Ma et al. 2019), with the standard Gaussian prior
as DU-VAE ran it (paper §4.1; reference-spec §4).

For a training batch of B posteriors N(mu_i, sigma_i^2) (diagonal, D dimensions):

- pairwise KL per dimension, D[i, j, d] = KL(q(z_d|x_i) || q(z_d|x_j))
  = 1/2 (s_i/s_j + (mu_i - mu_j)^2 / s_j - log(s_i/s_j) - 1) with s = sigma^2; D[i, i, d] = 0;
- **diversity**: m_d = the mean of D[i, j, d] over the B(B-1) pairs i != j (the mutual posterior
  divergence); the term is -eta sum_d log sigmoid(m_d), which falls as the posteriors move apart;
- **smoothness**: gamma_s x the standard deviation of the pair totals T[i, j] = sum_d D[i, j, d].
  The reference puts sum_d m_d on the diagonal of T and multiplies torch's std over all B^2 entries
  by sqrt((B^2 - 1) / (B^2 - B - 1)); the diagonal then equals the mean and adds nothing, so that is
  exactly the unbiased std over the B(B-1) off-diagonal entries, which is what is computed here.

The batch term enters the loss through `kl_term`: every example's term is its true KL plus the batch
term, so the batch mean of the loss holds the batch term once (weighted by the KL weight like the
KL itself, i.e. annealed with it). Training only; in evaluation `kl_term` is the plain KL, and the
`kl` every run reports is always the true KL. A batch of 1 has no pairs: its batch term is 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from duvae_cli.methods.registry import Capabilities, Preset, register
from duvae_cli.models.regularizer import Regularizer
from duvae_cli.options import Option

_TINY_VARIANCE = 1e-20  # sqrt's gradient is infinite at 0: identical posteriors give std 1e-10, grad 0


def pairwise_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """D[i, j, d] = KL(N(mu_id, s_id) || N(mu_jd, s_jd)), (B, B, D); exactly 0 on the diagonal.
    Ratios come from log-variance differences, so no epsilon is needed in the denominators."""
    log_ratio = logvar.unsqueeze(1) - logvar.unsqueeze(0)  # (B, B, D): log s_i - log s_j
    gap = (mean.unsqueeze(1) - mean.unsqueeze(0)).pow(2) * torch.exp(-logvar).unsqueeze(0)
    return 0.5 * (log_ratio.exp() + gap - log_ratio - 1.0)


def mutual_divergence(pairs: torch.Tensor) -> torch.Tensor:
    """m_d: mean of D[i, j, d] over the pairs i != j, (D,). The diagonal is 0, so sum / (B(B-1))."""
    b = pairs.shape[0]
    return pairs.sum((0, 1)) / (b * (b - 1))


def pair_spread(pairs: torch.Tensor) -> torch.Tensor:
    """Unbiased std of the pair totals sum_d D[i, j, d] over i != j: the reference's smoothness value.
    Finite gradient (zero) when every pair total is the same, e.g. identical posteriors."""
    b = pairs.shape[0]
    totals = pairs.sum(-1)[~torch.eye(b, dtype=torch.bool, device=pairs.device)]  # (B(B-1),)
    variance = (totals - totals.mean()).pow(2).sum() / (totals.numel() - 1)
    return variance.clamp_min(_TINY_VARIANCE).sqrt()


@register("mae")
class MAE(Regularizer):
    """MAE: `mae_eta` weights the diversity term, `mae_gamma` the smoothness term (design.md §2)."""

    options = (Option("mae_eta", float, 1.0, "Weight of the diversity term.", range=">= 0"),
               Option("mae_gamma", float, 0.2, "Weight of the smoothness term.", range=">= 0"))
    presets = {  # (eta, gamma_s) of the paper (reference-spec §4)
        "yahoo": Preset("paper's Yahoo MAE (reference-spec §4)", mae_eta=1.0),
        "yelp": Preset("paper's Yelp MAE (reference-spec §4)", mae_eta=2.0),
        "short-yelp": Preset("paper's Yelp classification model", mae_eta=2.0),
        "omniglot": Preset("paper's Omniglot MAE (reference-spec §4)", mae_eta=0.5),
        "mnist": Preset("Omniglot's value", mae_eta=0.5)}
    capabilities = Capabilities()  # bf16 parity not measured (its pairwise KL over the batch)

    def __init__(self, latent_dim: int, mae_eta: float = 1.0, mae_gamma: float = 0.2):
        super().__init__()
        if mae_eta < 0 or mae_gamma < 0:
            raise ValueError(f"mae_eta and mae_gamma must be >= 0, got {mae_eta}, {mae_gamma}")
        self.mae_eta, self.mae_gamma = mae_eta, mae_gamma

    def batch_term(self, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """-eta sum_d log sigmoid(m_d) + gamma_s std(T), a scalar; 0 for a batch of 1."""
        if mean.shape[0] < 2:
            return mean.new_zeros(())
        pairs = pairwise_kl(mean, logvar)
        diversity = -F.logsigmoid(mutual_divergence(pairs)).sum()
        return self.mae_eta * diversity + self.mae_gamma * pair_spread(pairs)

    def kl_term(self, kl, mean, logvar):
        per_example = kl.sum(-1)
        if not self.training:
            return per_example
        return per_example + self.batch_term(mean, logvar)  # (B,) + (): the batch mean holds it once
