"""The posterior regularizers' maths: registry, beta, free bits, delta-VAE, and BN on the means
(BN-VAE's frozen scales, DU-VAE's RMS-normalised learnable scales)."""

import math

import pytest
import torch
from torch import nn

from duvae_cli.methods import REGULARIZERS, build_regularizer
from duvae_cli.models.gaussian import kl_standard_normal
from duvae_cli.methods.delta import delta_variance_bounds



D = 6


def raw_posterior(seed: int, batch: int = 32, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    mean = torch.randn(batch, D, generator=g, dtype=dtype) * torch.linspace(0.1, 3, D, dtype=dtype)
    logvar = torch.randn(batch, D, generator=g, dtype=dtype)
    return mean, logvar


# ---------------------------------------------------------------------------------------- registry

def test_unknown_name_lists_every_valid_name():
    with pytest.raises(ValueError) as error:
        build_regularizer("no-such-model", D)
    for name in REGULARIZERS:
        assert name in str(error.value)


def test_paper_methods_are_registered():
    assert {"vae", "beta", "fb", "delta", "bn", "du"} <= set(REGULARIZERS)


@pytest.mark.parametrize("name", sorted(REGULARIZERS))
def test_build_passes_only_accepted_options(name):
    """One option set serves every model: each takes what it accepts; None means 'default'."""
    options = dict(gamma=0.7, p=0.9, beta=0.3, fb_lambda=0.2, delta=0.25, alpha_scale=1.0,
                   dropout_during_warmup=None, bn_eps=1e-5, not_an_option=1)
    regularizer = build_regularizer(name, D, **options)
    assert regularizer.name == name
    for attribute in ("beta", "fb_lambda", "delta", "p"):
        if hasattr(regularizer, attribute):
            assert getattr(regularizer, attribute) == options[attribute]
    if getattr(regularizer, "bn", None) is not None:
        assert regularizer.bn.gamma == 0.7


# ---------------------------------------------------------------------------- KL-term regularizers

@pytest.mark.parametrize("training", [True, False])
def test_beta_weights_the_kl(training):
    regularizer = build_regularizer("beta", D, beta=0.4).train(training)
    mean, logvar = raw_posterior(0)
    kl = kl_standard_normal(mean, logvar)
    new_mean, new_logvar = regularizer.posterior(mean, logvar, 1.0)
    assert new_mean is mean and new_logvar is logvar
    torch.testing.assert_close(regularizer.kl_term(kl, mean, logvar), 0.4 * kl.sum(-1))


def fb_posterior(fb_lambda: float):
    """Half the dimensions with batch KL well under lambda, half well over."""
    mean, logvar = raw_posterior(1)
    small = torch.arange(D) % 2 == 0
    mean = torch.where(small, 0.05 * mean / mean.abs().max(), mean + 1.0)
    logvar = torch.where(small, 0.01 * logvar, logvar)
    kl = kl_standard_normal(mean, logvar)
    assert (kl.mean(0)[small] < fb_lambda).all() and (kl.mean(0)[~small] > fb_lambda).all()
    return mean.requires_grad_(), logvar.requires_grad_(), small


def test_free_bits_clamps_each_dimension_batch_kl_at_lambda():
    fb_lambda = 0.1
    regularizer = build_regularizer("fb", D, fb_lambda=fb_lambda).train()
    mean, logvar, small = fb_posterior(fb_lambda)
    kl = kl_standard_normal(mean, logvar)
    term = regularizer.kl_term(kl, mean, logvar)
    expected = kl.mean(0).clamp(min=fb_lambda).sum()  # sum_d max(lambda, mean_batch KL_d)
    torch.testing.assert_close(term, expected.expand(len(kl)))
    assert term[0] >= D * fb_lambda
    # each dimension contributes max(lambda, its batch KL): lambda exactly where the KL is small
    per_dim_contribution = torch.stack([
        regularizer.kl_term(kl * (torch.arange(D) == d), mean, logvar)[0] - (D - 1) * fb_lambda
        for d in range(D)])
    torch.testing.assert_close(per_dim_contribution[small],
                               torch.full((int(small.sum()),), fb_lambda, dtype=kl.dtype))
    assert (per_dim_contribution >= fb_lambda - 1e-12).all()


def test_free_bits_gives_no_gradient_below_lambda():
    fb_lambda = 0.1
    regularizer = build_regularizer("fb", D, fb_lambda=fb_lambda).train()
    mean, logvar, small = fb_posterior(fb_lambda)
    regularizer.kl_term(kl_standard_normal(mean, logvar), mean, logvar).mean().backward()
    for grad in (mean.grad, logvar.grad):
        assert torch.equal(grad[:, small], torch.zeros_like(grad[:, small]))
        assert (grad[:, ~small].abs().sum(0) > 0).all()


def test_free_bits_is_the_plain_kl_in_eval():
    regularizer = build_regularizer("fb", D, fb_lambda=0.1).eval()
    mean, logvar, _ = fb_posterior(0.1)
    kl = kl_standard_normal(mean, logvar)
    torch.testing.assert_close(regularizer.kl_term(kl, mean, logvar), kl.sum(-1))


# ----------------------------------------------------------------------------------------- delta

@pytest.mark.parametrize("delta", [0.01, 0.1, 0.15, 0.5, 1.0, 3.0])
def test_delta_variance_bounds_are_the_roots(delta):
    v_low, v_high = delta_variance_bounds(delta)
    assert 0 < v_low < 1 < v_high
    for v in (v_low, v_high):
        assert abs(math.log(v) - v + 2 * delta + 1) < 1e-12
        # the variance whose KL at mean 0 is exactly delta
        assert abs(0.5 * (v - math.log(v) - 1) - delta) < 1e-12


@pytest.mark.parametrize("delta", [0.01, 0.1, 0.5, 3.0])
def test_delta_variance_bounds_match_lambert_w(delta):
    special = pytest.importorskip("scipy.special")
    x = -math.exp(-(1 + 2 * delta))
    v_low, v_high = delta_variance_bounds(delta)
    assert v_low == pytest.approx(-special.lambertw(x, 0).real, rel=1e-10)
    assert v_high == pytest.approx(-special.lambertw(x, -1).real, rel=1e-10)


EXTREMES = torch.tensor([-1e4, -60.0, -8.0, -1.0, -1e-3, 0.0, 1e-3, 1.0, 8.0, 60.0, 1e4])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("delta", [0.1, 0.5])
def test_delta_kl_is_delta_plus_half_relu_mean(delta, dtype):
    regularizer = build_regularizer("delta", D, delta=delta)
    raw_mean = torch.cat([EXTREMES, 5 * torch.randn(200)]).to(dtype)
    raw_logvar = torch.cat([EXTREMES.flip(0), 5 * torch.randn(200)]).to(dtype)
    raw_mean, raw_logvar = raw_mean.view(-1, 1).requires_grad_(), raw_logvar.view(-1, 1).requires_grad_()
    mean, logvar = regularizer.posterior(raw_mean, raw_logvar, 1.0)
    kl = kl_standard_normal(mean, logvar)
    assert (kl >= delta).all()
    torch.testing.assert_close(kl, delta + torch.relu(raw_mean) / 2 + 5e-7,
                               rtol=1e-6, atol=1e-6 if dtype == torch.float32 else 1e-12)
    v_low, v_high = delta_variance_bounds(delta)
    var = logvar.exp()
    assert (var >= v_low * (1 - 1e-6)).all() and (var <= v_high * (1 + 1e-6)).all()
    kl.sum().backward()  # the 1e-6 keeps the sqrt's gradient finite where relu(raw_mean) = 0
    assert torch.isfinite(raw_mean.grad).all() and torch.isfinite(raw_logvar.grad).all()


def test_delta_must_be_positive():
    with pytest.raises(ValueError, match="delta"):
        build_regularizer("delta", D, delta=0.0)


# ------------------------------------------------------------------------- BN on the means (bn/du)

BN_EPS = 1e-5


def bn_regularizer(name: str, gamma: float):
    regularizer = build_regularizer(name, D, gamma=gamma, p=0.8, bn_eps=BN_EPS).double().train()
    return regularizer


def assert_batch_scale(regularizer, mean_after):
    """Biased batch std of the post-BN means = |scale| sqrt(v / (v + eps)) ~ |scale|; batch mean = shift."""
    bn = regularizer.bn.bn
    pre_var = regularizer.pre_bn_variance()
    std = mean_after.std(0, unbiased=False)
    torch.testing.assert_close(std, bn.weight.abs().detach() * (pre_var / (pre_var + BN_EPS)).sqrt(),
                               rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(std, bn.weight.abs().detach(), rtol=BN_EPS / (2 * pre_var.min()) + 1e-9,
                               atol=0.0)
    torch.testing.assert_close(mean_after.mean(0), bn.bias.detach(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["bn", "du"])
def test_bn_means_have_batch_scale_gamma_at_init(name):
    gamma = 0.6
    regularizer = bn_regularizer(name, gamma)
    mean, logvar = raw_posterior(2)
    mean_after, _ = regularizer.posterior(3 * mean + 1, logvar, 1.0)
    torch.testing.assert_close(regularizer.bn.bn.weight.detach(), torch.full((D,), gamma, dtype=torch.float64))
    assert_batch_scale(regularizer, mean_after)


@pytest.mark.parametrize("name", ["bn", "du"])
def test_bn_scales_after_sgd_steps(name):
    """SGD on a loss that wants very different per-dimension scales: `bn` keeps every scale frozen
    at gamma; `du` moves them but after_step() restores an RMS of exactly gamma (Algorithm 1)."""
    gamma = 0.5
    torch.manual_seed(0)
    regularizer = bn_regularizer(name, gamma)
    upstream = nn.Linear(D, D).double()
    optimizer = torch.optim.SGD([*upstream.parameters(), *regularizer.parameters()], lr=0.5)
    inputs, logvar = raw_posterior(3, batch=64)
    wanted_scale = torch.linspace(0.05, 2.0, D, dtype=torch.float64)  # mean_d^2 is not gamma^2
    for _ in range(8):
        mean_after, _ = regularizer.posterior(upstream(inputs), logvar, 1.0)
        target = wanted_scale * (mean_after.detach() - mean_after.detach().mean(0)) / gamma + 0.3
        loss = (mean_after - target).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        regularizer.after_step()
        weight = regularizer.bn.bn.weight.detach()
        if name == "bn":  # frozen: bit for bit what it was
            assert torch.equal(weight, torch.full((D,), gamma, dtype=torch.float64))
        else:
            assert abs(weight.pow(2).mean().sqrt().item() - gamma) < 1e-6
    weight = regularizer.bn.bn.weight.detach()
    if name == "du":
        assert weight.std() > 0.05, "the loss should have moved the scales apart"
    assert (regularizer.bn.bn.bias.detach().abs() > 1e-3).all(), "the shifts are learnable"
    mean_after, _ = regularizer.posterior(upstream(inputs), logvar, 1.0)
    assert_batch_scale(regularizer, mean_after)
    # hence the batch second moment of the means, averaged over dimensions, is >= gamma^2 (du: RMS)
    assert mean_after.pow(2).mean() >= gamma**2 * (1 - BN_EPS / regularizer.pre_bn_variance().min())
