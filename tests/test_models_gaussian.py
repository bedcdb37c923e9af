"""Diagonal-Gaussian helpers against torch.distributions and against their own moments."""

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from duvae_cli.models.gaussian import kl_standard_normal, log_normal, log_standard_normal, sample



def random_gaussian(seed: int, shape=(64, 8), dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    mean = 3 * torch.randn(shape, generator=g, dtype=dtype)
    logvar = 4 * torch.randn(shape, generator=g, dtype=dtype)  # variances from ~e-12 to ~e12
    return mean, logvar


@pytest.mark.parametrize("seed", range(3))
def test_kl_equals_torch_distributions(seed):
    mean, logvar = random_gaussian(seed)
    expected = kl_divergence(Normal(mean, (0.5 * logvar).exp()), Normal(0.0, 1.0))
    torch.testing.assert_close(kl_standard_normal(mean, logvar), expected, rtol=1e-10, atol=1e-10)


def test_kl_is_zero_only_at_the_prior():
    zero = torch.zeros(5, 3)
    assert torch.equal(kl_standard_normal(zero, zero), zero)
    mean, logvar = random_gaussian(0)
    assert (kl_standard_normal(mean, logvar) > 0).all()


@pytest.mark.parametrize("seed", range(3))
def test_log_normal_equals_summed_log_prob(seed):
    mean, logvar = random_gaussian(seed)
    z = mean + torch.randn_like(mean) * 2
    expected = Normal(mean, (0.5 * logvar).exp()).log_prob(z).sum(-1)
    torch.testing.assert_close(log_normal(z, mean, logvar), expected, rtol=1e-10, atol=1e-8)
    torch.testing.assert_close(log_standard_normal(z), Normal(0.0, 1.0).log_prob(z).sum(-1))


def test_log_normal_broadcasts_over_samples():
    """z (B, K, D) against parameters (B, 1, D), as the importance-weighted bound uses it."""
    mean, logvar = random_gaussian(1, shape=(4, 3))
    z = sample(mean, logvar, n=6)  # (B, K, D)
    joint = log_normal(z, mean.unsqueeze(1), logvar.unsqueeze(1))
    for k in range(6):
        torch.testing.assert_close(joint[:, k], log_normal(z[:, k], mean, logvar))


def test_sample_has_the_posterior_moments():
    """Reparameterised draws: empirical mean and variance within CLT tolerance of (mean, var)."""
    mean = torch.tensor([[-1.0, 0.0, 2.5]], dtype=torch.float64)
    logvar = torch.tensor([[0.0, math.log(0.01), math.log(9.0)]], dtype=torch.float64)
    n = 40_000
    draws = sample(mean, logvar, n=n, generator=torch.Generator().manual_seed(0))[0]  # (n, D)
    var = logvar.exp()[0]
    assert ((draws.mean(0) - mean[0]).abs() < 5 * (var / n).sqrt()).all()
    assert ((draws.var(0) - var).abs() < 5 * var * math.sqrt(2 / n)).all()


def test_sample_is_differentiable_in_both_parameters():
    mean = torch.zeros(2, 3, requires_grad=True)
    logvar = torch.zeros(2, 3, requires_grad=True)
    z = sample(mean, logvar, generator=torch.Generator().manual_seed(0))
    z.sum().backward()
    assert torch.equal(mean.grad, torch.ones(2, 3))
    torch.testing.assert_close(logvar.grad, 0.5 * z.detach())  # dz/dlogvar = eps * s / 2 = z / 2 at mu 0
