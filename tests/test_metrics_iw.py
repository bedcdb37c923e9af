"""The importance-weighted bound against the exact marginal of models small enough to integrate.

log p(x) = log int p(x|z) N(z; 0, I) dz is computed by a Riemann sum over a fine grid of z (for
smooth integrands with negligible tails this converges exponentially fast in the grid step).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from types import SimpleNamespace

from duvae_cli.data.batching import TextBatches
from duvae_cli.metrics import EvalOptions, score_examples
from duvae_cli.metrics.iw import BatchNoise, importance_weights, plan_chunks
from duvae_cli.metrics.scoring import make_scorer
from duvae_cli.methods import REGULARIZERS
from duvae_cli.models.regularizer import Regularizer
from duvae_cli.config.build import build_text_model
from duvae_cli.config.resolve import TrainConfig

VOCAB = 7  # <pad> <s> </s> <unk> + 3 words



def tiny_model(latent_dim: int, model: str = "vae", seed: int = 0, strength: float = 1.0):
    """An LSTM VAE with a latent space of 1 or 2 dims whose decoder depends on z; `strength` > 1
    makes p(x|z) vary faster with z (a larger gap between ELBO and log p(x))."""
    torch.manual_seed(seed)
    config = TrainConfig(model=model, embed_dim=3, hidden_dim=4, latent_dim=latent_dim)
    vae = build_text_model(config, VOCAB)
    with torch.no_grad():
        for p in vae.decoder.parameters():
            p.normal_(0.0, 1.0)
        vae.decoder.init_state.weight.mul_(2.0 * strength)
        vae.decoder.lstm.weight_ih_l0[:, 3:].mul_(strength)  # the z part of every input step
        vae.decoder.project.weight.mul_(strength)
        for p in vae.encoder.parameters():  # an encoder that is informative but imperfect
            p.normal_(0.0, 0.2)
    return vae.eval()


def tiny_split(n: int = 6, seed: int = 1) -> SimpleNamespace:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 4, n)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    tokens = rng.integers(4, VOCAB, offsets[-1]).astype(np.int32)
    return SimpleNamespace(tokens=tokens, offsets=offsets, labels=None)


@torch.inference_mode()
def exact_log_marginal(vae, examples: TextBatches) -> torch.Tensor:
    """(N,) float64: log sum_g p(x|z_g) N(z_g; 0, I) dz^D over a grid on [-7, 7]^D."""
    dim = vae.decoder.init_state.in_features
    axis = torch.linspace(-7.0, 7.0, 2801 if dim == 1 else 281)
    step = float(axis[1] - axis[0])
    grid = torch.cartesian_prod(*[axis] * dim).reshape(-1, dim)  # (G, D)
    batch = examples.batch(np.arange(len(examples)))
    log_px_z = vae.decoder.log_prob(batch, grid.expand(len(batch), -1, -1)).double()  # (N, G)
    log_prior = -0.5 * (math.log(2 * math.pi) + grid.double().pow(2)).sum(-1)
    return torch.logsumexp(log_px_z + log_prior, dim=1) + dim * math.log(step)


@torch.inference_mode()
def exact_elbo_nll(vae, examples: TextBatches) -> torch.Tensor:
    """(N,) -ELBO = E_q[-log p(x|z)] + KL, the expectation by quadrature under q (1-D latent)."""
    batch = examples.batch(np.arange(len(examples)))
    mean, logvar = vae.posterior(batch)
    std = (0.5 * logvar).exp()
    u = torch.linspace(-8.0, 8.0, 1601)  # standardised grid, z = mean + std u
    weights = torch.exp(-0.5 * u.double().pow(2)) * float(u[1] - u[0]) / math.sqrt(2 * math.pi)
    z = mean.unsqueeze(1) + std.unsqueeze(1) * u.view(1, -1, 1)  # (N, G, 1)
    rec = -(vae.decoder.log_prob(batch, z).double() * weights).sum(1)
    kl = 0.5 * (mean.pow(2) + logvar.exp() - logvar - 1).sum(1).double()
    return rec + kl


# every text model on the plain LSTM decoder (the injective decoders: tests/test_beyond_lid.py)
@pytest.mark.parametrize("model", sorted(n for n, cls in REGULARIZERS.items() if "text" in cls.capabilities.data
                                          and cls.decoder_for is Regularizer.decoder_for))
@pytest.mark.parametrize("latent_dim", [1, 2])
def test_iw_nll_with_large_k_matches_the_exact_marginal(model, latent_dim):
    vae, examples = tiny_model(latent_dim, model), TextBatches(tiny_split())
    exact = -exact_log_marginal(vae, examples)
    results = score_examples(vae, examples, EvalOptions(iw_samples=20000, seed=3))
    error = results["iw_nll"] - exact.numpy()
    # The reported number (the mean) within 0.02 nats; each example within 0.05, a few times the
    # Monte Carlo standard error of one example's estimate at K = 20,000 with these posteriors.
    assert abs(error.mean()) < 0.02 and np.abs(error).max() < 0.05, error
    assert (results["iw_nll"] < results["rec"] + results["kl"] + 1e-9).all()  # IW <= ELBO here too


@pytest.mark.parametrize("seed", [0, 1])
@torch.inference_mode()
def test_iw_nll_decreases_towards_the_exact_marginal_as_k_grows(seed):
    """E[IW-NLL_K] is non-increasing in K, equals -ELBO at K = 1 and tends to -log p(x) (Burda et al.,
    Thm. 1). The expectation is estimated from 12,800 samples per example cut into 12800/K groups."""
    vae, examples = tiny_model(1, strength=2.0), TextBatches(tiny_split(n=12))
    exact = float(-exact_log_marginal(vae, examples).mean())
    elbo = float(exact_elbo_nll(vae, examples).mean())
    batch, total = examples.batch(np.arange(12)), 12800
    mean, logvar = vae.posterior(batch)
    chunks = plan_chunks(12, total, lambda rows, ex: True, max_rows=10**6)
    log_w = importance_weights(make_scorer(vae.decoder), batch, mean, logvar,
                               BatchNoise(seed, np.arange(12), total, 1), chunks).log_weights
    averages = []
    for k in (1, 4, 16, 64):
        groups = log_w.view(12, total // k, k)
        averages.append(float(-(torch.logsumexp(groups, -1) - math.log(k)).mean()))
    assert elbo > exact + 0.3  # an imperfect posterior: a gap for K to close
    assert abs(averages[0] - elbo) < 0.02
    assert all(a > b for a, b in zip(averages, averages[1:])), averages
    assert exact - 0.005 < averages[-1] < exact + 0.03


@torch.inference_mode()
def test_iw_bound_never_exceeds_the_same_samples_elbo():
    """Jensen per example: logsumexp_k log w_k - log K >= mean_k log w_k, for every draw."""
    vae, examples = tiny_model(2), TextBatches(tiny_split(n=8))
    batch = examples.batch(np.arange(8))
    mean, logvar = vae.posterior(batch)
    for k in (1, 2, 50):
        noise = BatchNoise(7, np.arange(8), k, 2)
        chunks = plan_chunks(8, k, lambda rows, ex: True, max_rows=10**6)
        weights = importance_weights(make_scorer(vae.decoder), batch, mean, logvar, noise, chunks)
        bound = weights.iw_log_likelihood()
        assert (bound >= weights.log_weights.mean(1) - 1e-12).all()
        if k == 1:
            assert torch.equal(bound, weights.log_weights[:, 0])


def test_reported_elbo_nll_is_not_below_iw_nll_and_matches_quadrature():
    vae, examples = tiny_model(1), TextBatches(tiny_split(n=12))
    results = score_examples(vae, examples, EvalOptions(iw_samples=4000, seed=11))
    elbo_nll = results["rec"] + results["kl"]
    assert results["iw_nll"].mean() <= elbo_nll.mean()
    np.testing.assert_allclose(elbo_nll, exact_elbo_nll(vae, examples).numpy(), atol=0.1)
    np.testing.assert_allclose(results["elbo"], -elbo_nll)
