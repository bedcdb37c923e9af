"""Diagnostics of the posteriors q(z|x_i) = N(mean_i, exp(logvar_i)) over an evaluation set.

All take tensors of shape (N, D) (N examples, D latent dimensions) and work in float64; units are
nats. Definitions follow reference-spec §5 and the paper (Shen et al. 2021, Eq. 3 and 5).
"""

from __future__ import annotations

import math

import torch

from duvae_cli.models.gaussian import LOG_2PI, kl_standard_normal

MPD_EPS = 1e-9  # the reference adds it to every variance it divides by


def _neg_entropy(logvar: torch.Tensor) -> torch.Tensor:
    """E_q[log q(z|x)] per example, analytic: -D/2 log 2 pi - 1/2 sum_d (1 + log sigma2_d). (N,)"""
    return -0.5 * logvar.shape[1] * LOG_2PI - 0.5 * (1 + logvar).sum(1)


def _log_aggregate(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor, block: int = 1024):
    """log q(z_i) = logsumexp_j log N(z_i; mean_j, var_j) - log N, all j (i included). (N_z,)

    The (N_z, N) matrix of log-densities comes from two GEMMs, expanding the square:
    sum_d (z_d - m_d)^2 / v_d = z^2 . (1/v) - 2 z . (m/v) + sum_d m_d^2 / v_d  (float64: no cancellation
    trouble at the variances met in practice)."""
    precision = torch.exp(-logvar)  # (N, D)
    offset = (LOG_2PI + logvar + mean.pow(2) * precision).sum(1)  # (N,)
    weighted_mean = mean * precision
    out = []
    for start in range(0, len(z), block):
        zb = z[start: start + block]  # (b, D)
        quad = zb.pow(2) @ precision.t() - 2 * zb @ weighted_mean.t()  # (b, N)
        out.append(torch.logsumexp(-0.5 * (quad + offset), dim=1))
    return torch.cat(out) - math.log(len(mean))


def mi_whole_set(mean: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor) -> float:
    """I(x; z) = E_x E_q[log q(z|x)] - E_x E_q[log q(z)] with q(z) the mixture of all N posteriors
    and one z_i ~ q(z|x_i) per example (reference-spec §5; small negative values are noise)."""
    mean, logvar, z = mean.double(), logvar.double(), z.double()
    return float(_neg_entropy(logvar).mean() - _log_aggregate(z, mean, logvar).mean())


def mi_per_batch(mean: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor, batches) -> float:
    """He et al.'s estimator: the whole-set estimator within each batch (the aggregate posterior is
    the mixture over the batch only), averaged with batch-size weights. Biased low for small batches."""
    total = sum(len(b) for b in batches)
    return sum(len(b) * mi_whole_set(mean[b], logvar[b], z[b]) for b in batches) / total


def active_units(mean: torch.Tensor, threshold: float = 0.01) -> tuple[int, torch.Tensor]:
    """AU: dimensions whose posterior-mean variance over the set (N-1 denominator) is >= threshold.
    Returns the count and the per-dimension variances (D,). One example has no variance: NaN for
    every dimension and AU 0 (instead of torch's degrees-of-freedom warning)."""
    if mean.shape[0] < 2:
        variance = torch.full(mean.shape[1:], float("nan"), dtype=torch.float64)
        return 0, variance
    variance = mean.double().var(0, unbiased=True)
    return int((variance >= threshold).sum()), variance


def kl_per_dim(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z_d|x) || N(0, 1)) averaged over the set, per dimension (D,); their sum is the `kl`."""
    return kl_standard_normal(mean.double(), logvar.double()).mean(0)


def mpd_per_dim(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Mean pairwise divergence per dimension (paper Eq. 3, the reference's `MPD`), pairs i = j included:

    MPD_d = 1/2 [ mean_ij (mu_i - mu_j)^2 / (s2_j + eps) + mean_i s2_i * mean_j 1 / (s2_j + eps) - 1 ],

    i.e. the mean over all pairs of KL(q(z_d|x_i) || q(z_d|x_j)) (the log-variance terms cancel over
    pairs). O(N D): mean_i (mu_i - mu_j)^2 = var(mu) + (mean(mu) - mu_j)^2, population variance."""
    mean, var = mean.double(), logvar.double().exp()
    inverse = 1.0 / (var + MPD_EPS)  # (N, D)
    centre = mean.mean(0)
    spread = (mean - centre).pow(2)  # (N, D)
    pair_sq = ((spread.mean(0) + spread) * inverse).mean(0)  # mean_ij (mu_i - mu_j)^2 / s2_j
    return 0.5 * (pair_sq + var.mean(0) * inverse.mean(0) - 1.0)


def ce_per_dim(logvar: torch.Tensor) -> torch.Tensor:
    """Conditional entropy H(z_d | x) per dimension (paper Eq. 5): 1/2 (mean_i log s2_i + log 2 pi e)."""
    return 0.5 * (logvar.double().mean(0) + LOG_2PI + 1.0)
