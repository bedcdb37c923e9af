"""LIDVAE and IL-LIDVAE (issue 31): the ICNN is convex and its gradient map monotone; the analytic
gradient is autograd's and runs under inference mode; beta never shrinks distances; the IL map is
L-inverse-Lipschitz; the decoders are injective in z, the text LSTM never sees z, the image offset
is additive; the IW scorer scores the new decoders with their own log_prob."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_models_vae import tiny_batch

from duvae_cli.metrics.iw import BatchNoise, importance_weights, plan_chunks
from duvae_cli.metrics.scoring import GenericScorer, make_scorer
from duvae_cli.models.icnn import ICNN, BrenierMap, PadLinear
from duvae_cli.models.injective import InjectiveLSTMDecoder, InjectivePixelCNNDecoder
from duvae_cli.models.text import TextBatch

D = 3


@pytest.fixture
def float64():
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(before)


def _scaled(icnn: ICNN, factor: float) -> ICNN:
    """Trained-looking weights: every affine input layer and V scaled up."""
    with torch.no_grad():
        for parameter in icnn.parameters():
            parameter.mul_(factor)
    return icnn


@pytest.mark.parametrize("factor", [1.0, 10.0])
def test_icnn_is_convex_in_its_input(float64, factor):
    torch.manual_seed(0)
    icnn = _scaled(ICNN(5, (7, 6, 4)), factor)
    a, b, lam = torch.randn(2000, 5) * 3, torch.randn(2000, 5) * 3, torch.rand(2000)
    mid = icnn(lam[:, None] * a + (1 - lam[:, None]) * b)
    assert (mid <= lam * icnn(a) + (1 - lam) * icnn(b) + 1e-9).all()  # Jensen on every pair
    assert all((F_W > 0).all() for F_W in icnn.weights())  # W = softplus(V) > 0


@pytest.mark.parametrize("quadratic", [0.0, 0.7])
def test_gradient_map_is_monotone(float64, quadratic):
    torch.manual_seed(1)
    icnn = ICNN(4, (16, 16), quadratic)  # width >= input: strictly monotone
    y1, y2 = torch.randn(1000, 4) * 2, torch.randn(1000, 4) * 2
    inner = ((icnn.gradient(y1) - icnn.gradient(y2)) * (y1 - y2)).sum(-1)
    assert (inner > 0).all()
    assert (inner >= quadratic * (y1 - y2).pow(2).sum(-1) - 1e-9).all()  # strong monotonicity


def test_analytic_gradient_is_autograds_and_runs_under_inference_mode(float64):
    torch.manual_seed(2)
    icnn = ICNN(6, (9, 5, 3), quadratic=0.3)
    y = torch.randn(40, 6, requires_grad=True)
    by_autograd = torch.autograd.grad(icnn(y).sum(), y, create_graph=True)[0]
    analytic = icnn.gradient(y)
    torch.testing.assert_close(analytic, by_autograd, rtol=0, atol=1e-12)
    # the training gradient (second order) through both paths agrees too
    weights = torch.randn(40, 6)
    # (the biases b_1.. only set where each unit switches: their gradient is 0 on both paths)
    first = torch.autograd.grad((analytic * weights).sum(), list(icnn.parameters()), materialize_grads=True)
    second = torch.autograd.grad((by_autograd * weights).sum(), list(icnn.parameters()), materialize_grads=True)
    for a, b in zip(first, second):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
    with torch.inference_mode():  # where evaluation runs; torch.autograd.grad would fail here
        torch.testing.assert_close(icnn.gradient(y.detach()), analytic.detach())


def test_pad_linear_never_shrinks_a_distance():
    torch.manual_seed(3)
    beta = PadLinear(5, 12)
    with torch.no_grad():
        beta.lower.mul_(50)
    u, v = torch.randn(500, 5), torch.randn(500, 5)
    assert ((beta(u) - beta(v)).norm(dim=-1) >= (u - v).norm(dim=-1) * (1 - 1e-6)).all()
    with pytest.raises(ValueError, match="out_dim >= in_dim"):
        PadLinear(5, 4)


@pytest.mark.parametrize("lipschitz", [0.1, 1.0, 5.0])
def test_il_map_is_l_inverse_lipschitz(float64, lipschitz):
    """The image map R^D -> R^784 of il-lidvae: ||g(z1) - g(z2)|| >= L ||z1 - z2||, and the smallest
    singular value of its Jacobian >= L."""
    torch.manual_seed(4)
    g = BrenierMap(D, 784, (32, 32), (784, 32), latent_quadratic=lipschitz, data_quadratic=1.0)
    z1, z2 = torch.randn(1000, D) * 2, torch.randn(1000, D) * 2
    ratio = (g(z1) - g(z2)).norm(dim=-1) / (z1 - z2).norm(dim=-1)
    assert (ratio >= lipschitz - 1e-9).all()
    jacobians = torch.func.vmap(torch.func.jacrev(g))(torch.randn(20, D))  # (20, 784, D)
    assert (torch.linalg.svdvals(jacobians)[:, -1] >= lipschitz - 1e-9).all()


def test_il_text_map_is_l_inverse_lipschitz_in_z_for_a_fixed_state(float64):
    torch.manual_seed(5)
    decoder = InjectiveLSTMDecoder(40, 6, 8, D, lid_hidden=16, latent_quadratic=2.0, data_quadratic=1.0).eval()
    h = torch.randn(1, 1, 8).expand(500, 1, 8)
    z1, z2 = torch.randn(500, D), torch.randn(500, D)
    gap = (decoder.step_logits(h, z1) - decoder.step_logits(h, z2)).squeeze(1).norm(dim=-1)
    assert (gap >= 2.0 * (z1 - z2).norm(dim=-1) - 1e-9).all()


def _sentences(seed: int = 0) -> TextBatch:
    return tiny_batch(seed, size=6, vocab=40)


def test_text_decoder_lstm_never_sees_z_and_logits_are_injective_in_z():
    torch.manual_seed(6)
    decoder = InjectiveLSTMDecoder(40, 6, 8, D, lid_hidden=16).eval()
    batch = _sentences()
    states, _ = decoder._states(batch.tokens)
    z1, z2 = torch.randn(6, D), torch.randn(6, D)
    logits1, (h1, c1) = decoder.logits(batch.tokens, z1)
    logits2, (h2, c2) = decoder.logits(batch.tokens, z2)
    assert torch.equal(h1, h2) and torch.equal(c1, c2)  # the LSTM state is the same for any z
    assert (logits1 - logits2).abs().amax(-1).min() > 0  # distinct z: distinct logits at every step
    assert (decoder.log_prob(batch, z1) != decoder.log_prob(batch, z2)).all()
    # the Jacobian of z -> logits of one step has full column rank at random points
    jacobian = torch.func.jacrev(lambda z: decoder.step_logits(states[:1, :1], z))(torch.randn(1, D))
    assert torch.linalg.matrix_rank(jacobian.reshape(40, D)) == D


def test_text_log_prob_of_k_samples_is_each_samples_and_ignores_padding():
    torch.manual_seed(7)
    decoder = InjectiveLSTMDecoder(40, 6, 8, D, lid_hidden=16).eval()
    batch, z = _sentences(seed=1), torch.randn(6, 4, D)
    with torch.no_grad():
        together = decoder.log_prob(batch, z)  # (B, K)
        one_by_one = torch.stack([decoder.log_prob(batch, z[:, k]) for k in range(4)], 1)
        alone = torch.stack([decoder.log_prob(TextBatch(batch.tokens[i: i + 1, : int(batch.lengths[i])],
                                                        batch.lengths[i: i + 1]), z[i: i + 1, 0])[0]
                             for i in range(6)])
    torch.testing.assert_close(together, one_by_one)
    torch.testing.assert_close(alone, together[:, 0])


def test_image_offset_is_additive_and_the_decoder_injective():
    torch.manual_seed(8)
    decoder = InjectivePixelCNNDecoder(D, 8, (3, 3, 3), lid_hidden=16).eval()
    x = torch.bernoulli(torch.full((5, 1, 28, 28), 0.3))
    z1, z2 = torch.randn(1, D).expand(5, D), torch.randn(1, D).expand(5, D)
    with torch.no_grad():
        change = decoder.logits(x, z1) - decoder.logits(x, z2)
        offset = decoder.offset(z1) - decoder.offset(z2)
    torch.testing.assert_close(change, offset, rtol=0, atol=1e-5)  # the same for every image x
    assert change.abs().amax((1, 2, 3)).min() > 0
    jacobian = torch.func.jacrev(lambda z: decoder.offset(z))(torch.randn(1, D))
    assert torch.linalg.matrix_rank(jacobian.reshape(784, D)) == D


def test_image_decoder_is_causal_in_eval_mode():
    torch.manual_seed(9)
    decoder = InjectivePixelCNNDecoder(D, 8, (3, 3, 3), lid_hidden=16).eval()
    x = torch.bernoulli(torch.full((1, 1, 28, 28), 0.5)).requires_grad_(True)
    row, col = 10, 13
    decoder.logits(x, torch.randn(1, D))[0, 0, row, col].backward()
    seen = x.grad[0, 0] != 0
    assert not seen[row, col:].any() and not seen[row + 1:].any()  # only pixels before (row, col)
    assert seen[:row].any()


@pytest.mark.parametrize("kind", ["text", "image"])
def test_the_iw_scorer_uses_the_decoders_own_log_prob(kind):
    """make_scorer must not take the plain LSTM's fast path for the LID text decoder; its scores are
    the decoder's log_prob, and the IW bound is at least the same samples' ELBO (Jensen)."""
    torch.manual_seed(10)
    if kind == "text":
        decoder, batch = InjectiveLSTMDecoder(40, 6, 8, D, lid_hidden=16).eval(), _sentences(seed=2)
    else:
        decoder, batch = InjectivePixelCNNDecoder(D, 8, (3, 3, 3), lid_hidden=16).eval(), \
            torch.bernoulli(torch.full((6, 1, 28, 28), 0.3))
    scorer = make_scorer(decoder)
    assert isinstance(scorer, GenericScorer)
    z = torch.randn(6, 5, D)
    with torch.inference_mode():
        torch.testing.assert_close(scorer(batch, z), decoder.log_prob(batch, z))
        mean, logvar = torch.randn(6, D), torch.randn(6, D) * 0.3
        noise = BatchNoise(3, np.arange(6), 20, D)
        chunks = plan_chunks(6, 20, lambda rows, ex: scorer.chunk_bytes(batch, rows, ex) < 2**30, 7)
        weights = importance_weights(scorer, batch, mean, logvar, noise, chunks)
    assert len(chunks) > 1
    assert (weights.iw_log_likelihood() >= weights.log_weights.mean(1) - 1e-12).all()
