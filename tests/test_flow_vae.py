"""The IAF posterior inside the VAE and the evaluation: the ELBO with a Monte Carlo KL, free bits on
the per-dimension MC KL, the regularizers acting on the base Gaussian, and the importance-weighted
bound with the flow's density (IW-NLL <= ELBO-NLL; IW-NLL -> the exact marginal)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from duvae_cli.data.batching import TextBatches
from duvae_cli.metrics import EvalOptions, score_examples
from duvae_cli.methods.du import ALPHA
from duvae_cli.models.gaussian import LOG_2PI, kl_standard_normal, log_normal
from duvae_cli.config.build import build_text_model
from duvae_cli.config.resolve import TrainConfig, regularizer_name
from duvae_cli.methods import FLOW_MODELS

from test_metrics_iw import exact_log_marginal, tiny_split
from test_models_vae import VOCAB, tiny_batch  # 11 words: covers tiny_split's too

LATENT = 3


def flow_model(model: str = "iaf-fb", latent_dim: int = LATENT, seed: int = 0, sizes=(6, 8)):
    torch.manual_seed(seed)
    config = TrainConfig(model=model, flow="iaf", embed_dim=sizes[0], hidden_dim=sizes[1],
                         latent_dim=latent_dim, flow_depth=2, flow_width=4, **_options(model))
    return build_text_model(config, VOCAB)


def _options(model: str) -> dict:
    return {"fb": dict(fb_lambda=0.3), "bn": dict(gamma=0.7), "du": dict(gamma=0.6, p=0.7)}.get(
        regularizer_name(model), {})


def saturate(model) -> None:
    with torch.no_grad():
        for block in model.flow.blocks:
            block.gate_bias.fill_(60.0)  # sigmoid(60) = 1: zT = z0


def replay(model, batch, seed: int, kl_weight: float = 1.0):
    """The posterior, the draw and the per-dimension KL of `model(batch)` called after manual_seed(seed)."""
    torch.manual_seed(seed)
    posterior = model.encode(batch, kl_weight)
    eps = torch.randn(posterior.mean.shape)
    z, log_q = model.draw(posterior, eps)
    return posterior, eps, z, log_q, model.kl_per_dim(posterior, z, log_q)


@pytest.mark.parametrize("model_name", sorted(FLOW_MODELS))
@pytest.mark.parametrize("training", [True, False])
def test_loss_uses_the_flow_sample_and_its_monte_carlo_kl(model_name, training):
    model = flow_model(model_name).train(training)
    batch = tiny_batch(size=10)
    model.train().encode(batch)  # BN running statistics away from their init
    model.train(training)
    torch.manual_seed(5)
    out = model(batch, kl_weight=0.7)
    posterior, eps, z, log_q, kl = replay(model, batch, 5, kl_weight=0.7)
    torch.testing.assert_close(out.z, z)
    torch.testing.assert_close(out.rec, -model.decoder.log_prob(batch, z))
    # log q(zT|x) = log N(z0; mu0, sigma0^2) - sum of log gates; KL_MC = log q(zT|x) - log N(zT; 0, I)
    z0 = posterior.mean + eps * (0.5 * posterior.logvar).exp()
    _, minus_log_gates = model.flow(z0, posterior.context, torch.zeros_like(z0))
    torch.testing.assert_close(log_q.sum(-1), log_normal(z0, posterior.mean, posterior.logvar)
                               + minus_log_gates.sum(-1))
    torch.testing.assert_close(out.kl, out.log_q + 0.5 * (LOG_2PI + z.pow(2)).sum(-1))
    torch.testing.assert_close(out.kl_term, model.regularizer.kl_term(kl, posterior.mean, posterior.logvar))
    torch.testing.assert_close(out.loss, (out.rec + 0.7 * out.kl_term).mean())
    assert not torch.allclose(z, z0), "the flow must move the sample"


def test_saturated_gates_give_the_gaussian_density_and_kl_in_expectation():
    model = flow_model("iaf-fb").eval()
    saturate(model)
    batch = tiny_batch(size=6)
    posterior = model.encode(batch)
    eps = torch.randn(6, 20000, LATENT, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        z, log_q = model.draw(posterior, eps)
    mean, logvar = posterior.mean.unsqueeze(1), posterior.logvar.unsqueeze(1)
    torch.testing.assert_close(z, mean + eps * (0.5 * logvar).exp())  # depth 2: original order
    torch.testing.assert_close(log_q.sum(-1), log_normal(z, mean, logvar))  # the density, exactly
    mc = (log_q + 0.5 * (LOG_2PI + z.pow(2))).mean(1)  # (6, D)
    analytic = kl_standard_normal(posterior.mean, posterior.logvar)
    standard_error = (log_q + 0.5 * (LOG_2PI + z.pow(2))).std(1) / math.sqrt(20000)
    assert ((mc - analytic).abs() < 5 * standard_error + 1e-6).all()


@torch.inference_mode()
def test_saturated_flow_evaluates_like_the_gaussian_vae():
    """With gates saturated the IW-NLL, rec and base parameters equal those of the same Gaussian VAE."""
    flowed = flow_model("iaf-bn", seed=2).eval()
    saturate(flowed)
    plain = build_text_model(TrainConfig(model="bn", gamma=0.7, embed_dim=6, hidden_dim=8,
                                         latent_dim=LATENT), VOCAB).eval()
    state = {k: v for k, v in flowed.state_dict().items() if not k.startswith("flow.")}
    state["encoder.head.weight"] = state["encoder.head.weight"][: 2 * LATENT]  # drop the context rows
    plain.load_state_dict(state)
    examples = TextBatches(tiny_split(n=8))
    options = EvalOptions(iw_samples=64, seed=4)
    a, b = score_examples(flowed, examples, options), score_examples(plain, examples, options)
    for key in ("iw_nll", "rec", "mean", "logvar", "z_sample"):
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-5)
    assert "kl_per_dim" in a and "kl_per_dim" not in b
    np.testing.assert_allclose(a["kl"], a["kl_per_dim"].sum(1), rtol=1e-5)


def test_free_bits_with_a_flow_clamps_each_dimension_batch_kl_at_lambda():
    model = flow_model("iaf-fb").train()
    batch = tiny_batch(size=16)
    *_, kl = replay(model, batch, 3)
    kl = kl.detach()
    per_dim = kl.mean(0)  # the batch-mean Monte Carlo KL of each dimension
    fb_lambda = model.regularizer.fb_lambda = float(per_dim.min() + per_dim.max()) / 2  # both cases
    torch.manual_seed(3)
    out = model(batch)
    expected = per_dim.clamp(min=fb_lambda).sum()
    torch.testing.assert_close(out.kl_term, expected.expand(16))
    assert (out.kl_term >= LATENT * fb_lambda - 1e-6).all()
    # a clamped dimension gives the KL no gradient: only the dimensions above lambda train it
    kl.requires_grad_(True)
    model.regularizer.kl_term(kl, None, None).sum().backward()
    assert ((kl.grad != 0).any(0) == (per_dim > fb_lambda)).all()


@pytest.mark.parametrize("model_name", ["du-iaf", "iaf-bn"])
def test_regularizers_shape_the_base_gaussian_as_without_a_flow(model_name):
    """BN gives the base means batch scale gamma in training; DU floors the base variances at alpha."""
    model = flow_model(model_name).train()
    gamma = model.regularizer.bn.gamma
    with torch.no_grad():  # means spread far above BN's eps (the reference's IAF init starts them near 0)
        for parameter in model.encoder.parameters():
            parameter.normal_(0.0, 1.0)
    posterior = model.encode(tiny_batch(size=32), kl_weight=1.0)
    scale = posterior.mean.var(0, unbiased=False).sqrt()
    torch.testing.assert_close(scale, torch.full((LATENT,), gamma), rtol=1e-3, atol=1e-3)
    if model_name == "du-iaf":
        assert (posterior.logvar.exp() >= ALPHA * (1 - 1e-6)).all()
        dropped = (posterior.logvar.exp() - ALPHA).abs() < 1e-7  # Eq. 6: dropped entries sit at alpha
        assert 0.1 < dropped.float().mean() < 0.5  # keep probability 0.7


@torch.inference_mode()
def test_iw_nll_with_a_flow_is_below_the_same_samples_elbo():
    model = flow_model("du-iaf").eval()
    results = score_examples(model, TextBatches(tiny_split(n=10)), EvalOptions(iw_samples=50, seed=1))
    elbo_nll = results["rec"] + results["kl"]
    assert (results["iw_nll"] <= elbo_nll + 1e-9).all()  # Jensen, per example: same K samples
    assert (results["iw_nll"] < elbo_nll - 1e-3).any()
    np.testing.assert_allclose(results["elbo"], -elbo_nll)


def perturbed_flow_model(latent_dim: int):
    """An informative but imperfect encoder, a z-dependent decoder and gates far from identity."""
    model = flow_model("iaf-fb", latent_dim=latent_dim, seed=latent_dim, sizes=(3, 4))  # test_metrics_iw's
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.normal_(0.0, 1.0)
        model.decoder.init_state.weight.mul_(2.0)
        for p in model.encoder.parameters():
            p.normal_(0.0, 0.2)
        for block in model.flow.blocks:
            block.gate_bias.normal_(1.5, 0.5)  # sigma mostly in (0.7, 0.9): z moves a fair way
    return model.eval()


@pytest.mark.parametrize("latent_dim", [1, 2])
def test_iw_nll_with_a_flow_converges_to_the_exact_marginal(latent_dim):
    """The flow's log q is a normalised density: with many samples the IW bound reaches -log p(x),
    computed by quadrature without q."""
    model, examples = perturbed_flow_model(latent_dim), TextBatches(tiny_split())
    exact = -exact_log_marginal(model, examples)
    results = score_examples(model, examples, EvalOptions(iw_samples=20000, seed=3))
    error = results["iw_nll"] - exact.numpy()
    assert abs(error.mean()) < 0.02 and np.abs(error).max() < 0.05, error


@torch.inference_mode()
def test_probe_features_are_mu0_and_the_flow_of_mu0():
    model = flow_model("du-iaf").eval()
    batch = tiny_batch(size=5)
    mean, context = model.encode(batch).mean, model.encode(batch).context
    zt, _ = model.flow(mean, context, torch.zeros_like(mean))
    torch.testing.assert_close(model.features(batch), torch.cat([mean, zt], -1))
    torch.testing.assert_close(model.codes(batch)[1], zt)
    assert not torch.allclose(zt, mean)
    saturate(model)  # an identity flow: zT = mu0
    torch.testing.assert_close(model.codes(batch)[1], mean)
