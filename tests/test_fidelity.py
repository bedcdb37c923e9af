"""Fidelity to the code behind the paper's tables (issue #15): image-encoder initialisation for every
model, Agg-VAE's clip over all gradients and its presets and MI estimator, SA-VAE's separate clipping,
the delta-VAE squash, DU's floor gated on the KL weight (also under an IAF), the IAF width 60."""

import math

import pytest
import torch
from torch import nn

import test_train_loop
from test_models_vae import tiny_batch, tiny_vae
from test_strategies import OneBatch, _informative
from test_train_loop import _config

from duvae_cli.metrics.posterior import mi_per_batch, mi_whole_set
from duvae_cli.methods.du import ALPHA
from duvae_cli.methods import build_regularizer
from duvae_cli.models.vae import Posterior
from duvae_cli.config.build import build_image_model, build_text_model
from duvae_cli.config.resolve import resolve_config
from duvae_cli.train.loop import LoopState
from duvae_cli.methods.aggressive import Aggressive
from duvae_cli.methods.savi import SVI_CLIP, refine
from duvae_cli.optim import update
from duvae_cli.data.batching import batches_for
from duvae_cli.train.validate import validate

toy_dataset = test_train_loop.toy_dataset  # the loop tests' fixture

# ------------------------------------------------------------------ image encoders: reference init


@pytest.mark.parametrize("model", ["du", "bn", "du-iaf", "iaf-bn", "vae"])
def test_every_image_encoder_has_the_reference_initialisation(model):
    """enc_resnet_v2.py / enc_flow.py: convs N(0, sqrt(2 / (k^2 out))), BN 1/0, Xavier-uniform head
    with bias 0. PyTorch's default would give std 1/sqrt(3 k^2 in): 0.024 for the 3x3 64 -> 64 convs
    against the reference's 0.059, so the std pins which init ran."""
    torch.manual_seed(0)
    encoder = build_image_model(resolve_config("omniglot", model)).encoder
    convs = [m for m in encoder.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) >= 7
    for conv in convs:
        k, weights = conv.kernel_size[0], conv.weight.detach().double()
        expected = math.sqrt(2.0 / (k * k * conv.out_channels))
        n = weights.numel()
        assert abs(weights.std().item() / expected - 1) < 6 / math.sqrt(2 * n), (conv, weights.std(), expected)
        assert abs(weights.mean().item()) < 6 * expected / math.sqrt(n)
        assert conv.bias is None
    for norm in (m for m in encoder.modules() if isinstance(m, nn.BatchNorm2d)):
        assert torch.equal(norm.weight, torch.ones_like(norm.weight)) and not norm.bias.any()
    head = encoder.head.weight.detach().double()
    bound = math.sqrt(6.0 / (head.shape[0] + head.shape[1]))  # Xavier-uniform
    assert head.abs().max().item() <= bound and head.abs().max().item() > 0.99 * bound
    assert abs(head.std().item() / (bound / math.sqrt(3)) - 1) < 0.02
    assert not encoder.head.bias.any()


def test_text_bn_encoders_keep_pytorch_defaults():
    """The text exception stays: the reference's BN/DU LSTM encoders are not re-initialised."""
    config = resolve_config("synthetic", "du", dict(embed_dim=16, hidden_dim=16))
    encoder = build_text_model(config, 50).encoder
    assert encoder.head.weight.abs().max().item() > 0.05  # U(-0.01, 0.01) would stay below 0.01

# ------------------------------------------------------------------ Agg-VAE


def _grads(model, loss, parameters):
    return torch.autograd.grad(loss, parameters, allow_unused=True, retain_graph=True)


@pytest.mark.parametrize("side", ["encoder", "decoder"])
def test_aggressive_clip_norm_covers_all_parameters(side):
    """He et al. backpropagate into every parameter, clip the norm of all gradients, then step one
    side: the stepped side moves by -lr x its gradient x clip / (norm of ALL gradients)."""
    model = _informative(tiny_vae("vae")).double().eval()  # no dropout: the same loss twice
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    strategy = Aggressive(_config("vae", clip=0.05), model, optimizer, OneBatch())
    stepped = strategy.encoder if side == "encoder" else strategy.decoder
    torch.manual_seed(3)
    loss = model(tiny_batch(), 1.0).loss
    grads = _grads(model, loss, strategy.everything)
    norm_all = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads if g is not None]))
    norm_side = torch.linalg.vector_norm(torch.stack(
        [torch.linalg.vector_norm(g) for g, p in zip(grads, strategy.everything)
         if g is not None and any(p is q for q in stepped)]))
    assert norm_all > norm_side * 1.003 and norm_side > 0.05  # the two rules give steps 0.3% apart or more
    before = [p.detach().clone() for p in strategy.everything]
    update(model, strategy.optimizer, loss, stepped, 0.05, strategy.everything)
    scale = 0.05 / (float(norm_all) + 1e-6)
    for p, old, g in zip(strategy.everything, before, grads):
        if any(p is q for q in stepped) and g is not None:
            torch.testing.assert_close(old - p.detach(), 0.5 * scale * g, rtol=1e-6, atol=1e-12)  # the step
        elif not any(p is q for q in stepped):
            assert torch.equal(p.detach(), old)


def test_aggressive_text_preset_is_he_et_al():
    config = resolve_config("short-yelp", "vae", dict(strategy="aggressive"))
    assert (config.kl_start, config.patience, config.agg_mi) == (0.1, 2, "batch")
    assert resolve_config("short-yelp", "vae", dict(strategy="aggressive"), sets=["kl_start=0"]).kl_start == 0
    assert resolve_config("short-yelp", "vae", dict(strategy="aggressive", patience=7)).patience == 7
    standard = resolve_config("short-yelp", "vae")
    assert (standard.kl_start, standard.patience) == (0.0, 5)
    images = resolve_config("omniglot", "vae", dict(strategy="aggressive"))
    # He et al.'s image.py and README: --kl_start 0.1 --warm_up 10, decay_epoch 20, the image stop rule
    assert (images.kl_start, images.warm_up, images.patience, images.agg_window, images.agg_stop) == \
        (0.1, 10.0, 20, 10, "best5")
    assert standard.agg_stop == "previous"  # text.py's rule, in every config.json


def test_aggressive_image_rule_ends_after_five_epochs_below_the_best_mi():
    """image.py: best_mi starts at 0 and follows every new best; each epoch below it counts (the count
    never resets) and the 5th ends aggressive training."""
    config = resolve_config("omniglot", "vae", dict(strategy="aggressive"))
    strategy, state = Aggressive(config, tiny_vae("vae"), None, OneBatch()), LoopState(lr=1.0)
    notes = [strategy.end_epoch(state, mi) for mi in (0.5, 0.4, 0.6, 0.55, 0.7, 0.1, 0.65)]
    assert notes == [None] * 7 and state.strategy_state["below"] == 4  # 0.4, 0.55, 0.1, 0.65
    assert "the 5th time below the best" in strategy.end_epoch(state, 0.69)
    assert not state.strategy_state["aggressive"]


def test_savi_schedule_is_he_et_als_text_sa():
    """text_sa.py: kl_start 1.0 (no annealing), decay_epoch 2 with no epoch-15 gate; images keep theirs."""
    text = resolve_config("short-yelp", "vae", dict(strategy="savi"))
    assert (text.kl_start, text.patience, text.decay_from_epoch) == (1.0, 2, 0)
    images = resolve_config("omniglot", "vae", dict(strategy="savi"))
    assert (images.kl_start, images.patience, images.decay_from_epoch) == (0.0, 20, 0)


@pytest.mark.parametrize("model", ["du-iaf", "iaf-bn", "iaf-fb"])
def test_text_iaf_encoders_have_the_reference_flow_initialisation(model):
    """enc_flow.py reset_parameters: LSTM weights and the head U(-0.01, 0.01), LSTM biases 0,
    embeddings U(-0.1, 0.1), whatever the regularizer (BN-style ones included)."""
    torch.manual_seed(0)
    encoder = build_text_model(resolve_config("synthetic", model, dict(embed_dim=16, hidden_dim=16)), 50).encoder
    for name, parameter in encoder.lstm.named_parameters():
        if name.startswith("bias"):
            assert not parameter.any(), name
        else:
            assert 0.009 < parameter.abs().max().item() <= 0.01, name
    assert 0.009 < encoder.head.weight.abs().max().item() <= 0.01
    assert 0.09 < encoder.embed.weight.abs().max().item() <= 0.1


def test_stop_rule_reads_the_per_batch_mi_by_default():
    model = tiny_vae("vae")
    strategy = Aggressive(_config("vae", batch_size=8), model, torch.optim.SGD(model.parameters(), lr=0.5),
                          OneBatch())
    assert (strategy.mi_key, strategy.mi_batch_size) == ("mi_batch", 8)
    whole = Aggressive(_config("vae", agg_mi="whole"), model, strategy.optimizer, OneBatch())
    assert (whole.mi_key, whole.mi_batch_size) == ("mi", None)
    with pytest.raises(Exception, match="agg_mi"):
        _config("vae", agg_mi="both")


def test_validation_per_batch_mi_is_he_et_al_estimator():
    """`mi_batch` = the whole-set estimator within each batch, batch-size weighted, same z as `mi`."""
    torch.manual_seed(0)
    mean, logvar = torch.randn(10, 2, dtype=torch.float64), torch.randn(10, 2, dtype=torch.float64) - 1
    z = mean + (0.5 * logvar).exp() * torch.randn_like(mean)
    batches = [torch.arange(0, 4), torch.arange(4, 10)]
    expected = (4 * mi_whole_set(mean[:4], logvar[:4], z[:4]) + 6 * mi_whole_set(mean[4:], logvar[4:], z[4:])) / 10
    assert mi_per_batch(mean, logvar, z, batches) == pytest.approx(expected, rel=1e-12)
    assert mi_per_batch(mean, logvar, z, batches) < mi_whole_set(mean, logvar, z)  # biased low, as expected

# ------------------------------------------------------------------ SA-VAE: separate clipping


def test_savi_clips_mean_and_logvar_gradients_separately():
    """One refinement step (momentum starts at 0) moves mean by its clipped gradient and logvar by
    its own: a mean far from the prior has a huge gradient (clipped to norm 5) while the log-variance
    gradient stays under 5 and passes unscaled (a joint clip would shrink it too)."""
    model = _informative(tiny_vae("vae")).double().eval()
    batch = tiny_batch(size=4)
    posterior = model.encode(batch)
    mean = (posterior.mean * 0 + 400.0).detach().requires_grad_()  # KL gradient mean / B = 100 per entry
    logvar = posterior.logvar.detach().clone().requires_grad_()
    torch.manual_seed(7)
    loss = model.elbo(batch, Posterior(mean, logvar, None), 1.0).loss
    g_mean, g_logvar = torch.autograd.grad(loss, (mean, logvar))
    assert g_mean.norm() > SVI_CLIP and g_logvar.norm() < SVI_CLIP
    torch.manual_seed(7)
    refined = refine(model, batch, Posterior(mean.detach(), logvar.detach(), None), 1.0, steps=1, lr=1.0)
    torch.testing.assert_close((mean - refined.mean).norm().item(), SVI_CLIP, rtol=1e-6, atol=0)
    torch.testing.assert_close(logvar.detach() - refined.logvar, g_logvar, rtol=1e-9, atol=1e-12)

# ------------------------------------------------------------------ delta-VAE squash


def test_delta_squash_is_bn_vae_clamped_sigmoid():
    delta = build_regularizer("delta", 3, delta=0.1).double()
    raw = torch.tensor([[-1e4, -50.0, -math.log(49.0) - 1e-3], [-3.0, 0.0, 40.0]], dtype=torch.float64,
                       requires_grad=True)
    _, logvar = delta.posterior(torch.zeros_like(raw), raw, 1.0)
    sigma = (0.5 * logvar).exp()
    squash = 1.0 / torch.clamp(1 + torch.exp(-raw.detach()), 1, 50)  # BN-VAE's code
    expected = delta.sigma_low + (delta.sigma_high - delta.sigma_low) * squash
    torch.testing.assert_close(sigma, expected, rtol=1e-12, atol=0)
    low = delta.sigma_low + 0.02 * (delta.sigma_high - delta.sigma_low)
    assert sigma.min().item() == pytest.approx(low, rel=1e-12)  # bounded below by 0.02, not 0
    assert sigma[1, 0] > low  # -3 > -log 49: still on the sigmoid
    (grad,) = torch.autograd.grad(sigma.sum(), raw)
    assert torch.isfinite(grad).all() and not grad[0].any() and (grad[1, :2] > 0).all()


# ------------------------------------------------------------------ DU floor gated on the KL weight


def test_du_iaf_floor_and_dropout_switch_on_together():
    """enc_flow.py: below weight 1 the base variances are raw (no floor, no dropout); at 1 both."""
    config = resolve_config("synthetic", "du-iaf", dict(embed_dim=8, hidden_dim=8, p=0.5))
    model = build_text_model(config, 20).train()
    batch = tiny_batch(size=64)
    torch.manual_seed(0)
    raw = model.encoder(batch)[1]
    warm = model.encode(batch, 0.5)
    torch.testing.assert_close(warm.logvar, raw)
    hot = model.encode(batch, 1.0)
    var = hot.logvar.exp()
    assert (var >= ALPHA * (1 - 1e-6)).all()
    assert ((var - ALPHA).abs() < 1e-7).float().mean().item() == pytest.approx(0.5, abs=0.15)


def test_validation_floor_follows_the_training_weight(toy_dataset):
    """Validation passes the last step's weight to the posterior hook: during warm-up a DU model is
    validated without the floor (as the reference), at weight 1 with it; the loss is the ELBO either way."""
    def model(**options):
        torch.manual_seed(0)
        return build_text_model(_config("du", **options), len(toy_dataset.vocab))

    valid = batches_for(toy_dataset.splits["valid"])
    during = validate(model(), valid, 64, seed=0, device="cpu", kl_weight=0.5)
    after = validate(model(), valid, 64, seed=0, device="cpu", kl_weight=1.0)
    floored = validate(model(floor_during_warmup=True), valid, 64, seed=0, device="cpu", kl_weight=0.5)
    assert during["kl"] != after["kl"]
    assert floored["kl"] == pytest.approx(after["kl"], rel=1e-6)


# ------------------------------------------------------------------ IAF width 60


@pytest.mark.parametrize("dataset", ["synthetic", "short-yelp", "yahoo", "omniglot"])
@pytest.mark.parametrize("model", ["du-iaf", "iaf-fb", "iaf-bn"])
def test_iaf_presets_use_width_60(dataset, model):
    assert resolve_config(dataset, model).flow_width == 60
    assert resolve_config(dataset, model, dict(flow_width=2)).flow_width == 2  # still an option


def test_width_60_means_60_hidden_units_per_latent_dimension():
    config = resolve_config("synthetic", "du-iaf", dict(embed_dim=8, hidden_dim=8))
    flow = build_text_model(config, 20).flow
    assert flow.blocks[0].made.layers[0].out_features == 60 * config.latent_dim
