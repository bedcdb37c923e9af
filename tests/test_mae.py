"""MAE's maths: pairwise KL and mutual divergence against brute force, the reference's smoothness
formula, diversity rising as posteriors move apart, finite gradients for identical posteriors, and
the batch term entering the loss once per batch in training only."""

import math

import pytest
import torch

from duvae_cli.methods import build_regularizer
from duvae_cli.models.gaussian import kl_standard_normal
from duvae_cli.methods.mae import mutual_divergence, pair_spread, pairwise_kl
from duvae_cli.config.resolve import resolve_config


def posterior(seed: int, batch: int = 5, dim: int = 3):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, dim, generator=g, dtype=torch.float64),
            torch.randn(batch, dim, generator=g, dtype=torch.float64) * 0.5)


def test_pairwise_kl_and_mutual_divergence_match_a_double_loop():
    mean, logvar = posterior(0, batch=4, dim=2)
    B, D = mean.shape
    brute = torch.zeros(B, B, D, dtype=torch.float64)
    for i in range(B):
        for j in range(B):
            q_i = torch.distributions.Normal(mean[i], (0.5 * logvar[i]).exp())
            q_j = torch.distributions.Normal(mean[j], (0.5 * logvar[j]).exp())
            brute[i, j] = torch.distributions.kl_divergence(q_i, q_j)
    pairs = pairwise_kl(mean, logvar)
    torch.testing.assert_close(pairs, brute)
    assert torch.equal(pairs[range(B), range(B)], torch.zeros(B, D, dtype=torch.float64))
    off_diagonal = [brute[i, j] for i in range(B) for j in range(B) if i != j]
    torch.testing.assert_close(mutual_divergence(pairs), torch.stack(off_diagonal).mean(0))


@pytest.mark.parametrize("batch", [2, 3, 16])
def test_spread_equals_the_reference_formula(batch):
    """Reference: diagonal of the pair totals replaced by sum_d m_d, torch's unbiased std over all B^2
    entries, times sqrt((B^2 - 1) / (B^2 - B - 1))."""
    pairs = pairwise_kl(*posterior(batch, batch=batch))
    totals = pairs.sum(-1).clone()
    totals[range(batch), range(batch)] = mutual_divergence(pairs).sum()
    reference = totals.std() * math.sqrt((batch**2 - 1) / (batch**2 - batch - 1))
    torch.testing.assert_close(pair_spread(pairs), reference)


def test_diversity_term_falls_as_posteriors_move_apart():
    mae = build_regularizer("mae", 3, mae_eta=1.0, mae_gamma=0.0)
    mean, logvar = posterior(1)
    terms = [float(mae.batch_term(mean * scale, logvar)) for scale in (0.1, 0.5, 1.0, 2.0, 4.0)]
    assert terms == sorted(terms, reverse=True) and terms[-1] < terms[0]
    m = mutual_divergence(pairwise_kl(mean * 4.0, logvar))
    assert terms[-1] == pytest.approx(float(-torch.nn.functional.logsigmoid(m).sum()))


@pytest.mark.parametrize("batch", [1, 2, 8])
def test_identical_posteriors_give_finite_gradients(batch):
    mae = build_regularizer("mae", 3, mae_eta=2.0, mae_gamma=0.2).train()
    mean = torch.full((batch, 3), 0.3, requires_grad=True)
    logvar = torch.full((batch, 3), -0.2, requires_grad=True)
    kl = kl_standard_normal(mean, logvar)
    term = mae.kl_term(kl, mean, logvar)
    term.mean().backward()
    assert torch.isfinite(mean.grad).all() and torch.isfinite(logvar.grad).all()
    expected = 0.0 if batch == 1 else 2.0 * 3 * math.log(2.0)  # -eta sum_d log sigmoid(0); no spread
    torch.testing.assert_close(term - kl.sum(-1).detach(), torch.full((batch,), expected), atol=1e-6, rtol=0)


def test_batch_term_enters_training_loss_once_and_never_the_kl():
    mae = build_regularizer("mae", 3, mae_eta=1.0, mae_gamma=0.2)
    mean, logvar = posterior(2, batch=6)
    kl = kl_standard_normal(mean, logvar)
    train_term = mae.train().kl_term(kl, mean, logvar)
    torch.testing.assert_close(train_term.mean() - kl.sum(-1).mean(), mae.batch_term(mean, logvar))
    torch.testing.assert_close(mae.eval().kl_term(kl, mean, logvar), kl.sum(-1))


@pytest.mark.parametrize("dataset, eta", [("yahoo", 1.0), ("yelp", 2.0), ("short-yelp", 2.0),
                                          ("omniglot", 0.5), ("synthetic", 1.0)])
def test_paper_presets(dataset, eta):
    config = resolve_config(dataset, "mae")
    assert (config.mae_eta, config.mae_gamma) == (eta, 0.2)
    assert resolve_config(dataset, "mae", {"mae_eta": 3.0}).mae_eta == 3.0
