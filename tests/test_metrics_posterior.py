"""Posterior diagnostics against closed forms: MI, AU, MPD, CE and the per-dimension KL."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.distributions import Normal, kl_divergence

from duvae_cli.data.batching import TextBatches
from duvae_cli.metrics import EvalOptions, score_examples, summarise
from duvae_cli.metrics import posterior
from duvae_cli.config.build import build_text_model
from duvae_cli.config.resolve import TrainConfig



def linear_gaussian(n: int, slopes: list[float], s: float, seed: int = 0):
    """x ~ N(0, 1), q(z | x) = N(a x, s^2 I); one z per example. I(x; z) = 1/2 log(1 + |a|^2 / s^2)
    (the 1-D formula 1/2 log(1 + a^2/s^2), since a.z / |a| is a sufficient statistic)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, generator=gen, dtype=torch.float64)
    mean = x * torch.tensor(slopes, dtype=torch.float64)
    logvar = torch.full_like(mean, 2 * math.log(s))
    z = mean + s * torch.randn(mean.shape, generator=gen, dtype=torch.float64)
    exact = 0.5 * math.log(1 + sum(a * a for a in slopes) / (s * s))
    return mean, logvar, z, exact


@pytest.mark.parametrize("slopes, s", [([1.0], 0.5), ([1.5, 0.3], 0.7), ([0.0, 0.0], 1.0)])
def test_whole_set_mi_matches_the_linear_gaussian_closed_form(slopes, s):
    mean, logvar, z, exact = linear_gaussian(4000, slopes, s)
    assert posterior.mi_whole_set(mean, logvar, z) == pytest.approx(exact, abs=0.05)


def test_per_batch_mi_is_the_whole_set_estimator_within_batches():
    mean, logvar, z, exact = linear_gaussian(1200, [1.5], 0.5)
    whole = posterior.mi_whole_set(mean, logvar, z)
    assert posterior.mi_per_batch(mean, logvar, z, [np.arange(1200)]) == pytest.approx(whole, rel=1e-12)
    small = posterior.mi_per_batch(mean, logvar, z, np.array_split(np.arange(1200), 75))  # batches of 16
    assert small < whole - 0.1  # the aggregate over 16 examples is too narrow: biased low
    assert small <= math.log(16) + 1e-9  # a batch of B can never show more than log B nats


def test_mi_is_zero_when_the_encoder_ignores_its_input():
    torch.manual_seed(0)
    vae = build_text_model(TrainConfig(model="vae", embed_dim=8, hidden_dim=8, latent_dim=3), 20)
    with torch.no_grad():
        vae.encoder.head.weight.zero_()  # q(z|x) = N(0, I) for every x
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 6, 1500)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    split = type("Split", (), {"tokens": rng.integers(4, 20, offsets[-1]).astype(np.int32),
                               "offsets": offsets})
    options = EvalOptions(iw_samples=2)
    examples = TextBatches(split)
    summary = summarise(score_examples(vae, examples, options), options, examples.lengths)
    # one draw per example: the estimate is mean_i [log N(z_i; 0, I)] - E[log N], sd ~ sqrt(D/2N) = 0.03
    assert abs(summary["metrics"]["mi"]) < 0.1
    assert summary["metrics"]["au"] == 0 and summary["metrics"]["kl"] == pytest.approx(0.0, abs=1e-12)


def test_active_units_use_n_minus_1_variance_and_count_at_the_threshold():
    mean = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.2, 0.1]])  # N-1 variances 0.5, 0.02, 0.005
    count, variance = posterior.active_units(mean, threshold=0.5)
    assert count == 1 and variance[0] == 0.5  # >=: exactly at the threshold counts
    assert posterior.active_units(mean, threshold=0.5 + 1e-9)[0] == 0
    assert posterior.active_units(mean, threshold=0.015)[0] == 2  # N denominator would give 0.01
    assert posterior.active_units(mean, threshold=0.01)[0] == 2
    assert posterior.active_units(mean, threshold=0.001)[0] == 3


def random_posteriors(n: int = 40, dim: int = 3, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    mean = 2 * torch.randn(n, dim, generator=gen, dtype=torch.float64)
    logvar = torch.randn(n, dim, generator=gen, dtype=torch.float64)
    return mean, logvar


def test_mpd_is_the_reference_formula_and_the_mean_pairwise_kl():
    mean, logvar = random_posteriors()
    var = logvar.exp()
    # the reference (DU:encoder.py MPD), written out over all pairs i, j (i = j included)
    pair = (mean.unsqueeze(1) - mean.unsqueeze(0)).pow(2) / (var.unsqueeze(0) + 1e-9)  # [i, j, d]
    reference = 0.5 * (pair.mean((0, 1)) + var.mean(0) * (1 / (var + 1e-9)).mean(0) - 1)
    torch.testing.assert_close(posterior.mpd_per_dim(mean, logvar), reference, rtol=1e-12, atol=1e-12)
    pairwise_kl = kl_divergence(Normal(mean.unsqueeze(1), var.sqrt().unsqueeze(1)),
                                Normal(mean.unsqueeze(0), var.sqrt().unsqueeze(0)))  # [i, j, d]
    torch.testing.assert_close(posterior.mpd_per_dim(mean, logvar), pairwise_kl.mean((0, 1)), rtol=1e-6,
                               atol=1e-6)


def test_mpd_is_zero_for_identical_posteriors():
    mean = torch.full((10, 2), 0.7, dtype=torch.float64)
    logvar = torch.full((10, 2), -0.3, dtype=torch.float64)
    torch.testing.assert_close(posterior.mpd_per_dim(mean, logvar), torch.zeros(2, dtype=torch.float64),
                               atol=1e-8, rtol=0)


def test_ce_is_the_mean_gaussian_entropy_per_dimension():
    mean, logvar = random_posteriors()
    expected = Normal(mean, (0.5 * logvar).exp()).entropy().mean(0)
    torch.testing.assert_close(posterior.ce_per_dim(logvar), expected, rtol=1e-12, atol=1e-12)
    # the DU floor alpha = 1/(2 pi e) is exactly the variance of zero entropy
    floor = torch.full((1, 1), math.log(1 / (2 * math.pi * math.e)), dtype=torch.float64)
    assert float(posterior.ce_per_dim(floor)) == pytest.approx(0.0, abs=1e-12)


def test_kl_per_dim_matches_torch_and_sums_to_the_kl():
    mean, logvar = random_posteriors()
    std = (0.5 * logvar).exp()
    expected = kl_divergence(Normal(mean, std), Normal(0.0, 1.0)).mean(0)
    torch.testing.assert_close(posterior.kl_per_dim(mean, logvar), expected, rtol=1e-12, atol=1e-12)
