"""Training strategies: aggressive inner steps leave the decoder bit-identical and end when the
validation MI falls; SA-VAE's refinement raises the ELBO and its gradient is the exact derivative of
the unrolled refinement; resume stays exact; bad combinations are usage errors."""

import copy

import pytest
import torch

from interrupting import assert_same_run, train_whole_and_resumed
from test_models_vae import tiny_batch, tiny_vae
import test_train_loop
from test_train_loop import _config

from duvae_cli.models.vae import Posterior
from duvae_cli.optim import train_step
from duvae_cli.train.loop import LoopState
from duvae_cli.methods.aggressive import Aggressive
from duvae_cli.methods.savi import SemiAmortized, refine


toy_dataset = test_train_loop.toy_dataset  # the loop tests' fixture


class OneBatch:
    """A stand-in batch source: every 'random training batch' is another fixed toy batch."""

    def plan(self, batch_size, rng=None):
        return [0, 1, 2]

    def batch(self, index, train=False):
        return tiny_batch(10 + int(index))


def _aggressive(model, **overrides):
    config = _config("vae", **{"agg_max_inner": 8, "agg_window": 3, **overrides})
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    return Aggressive(config, model, optimizer, OneBatch())


def _snapshot(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("name", ["vae", "du"])
def test_inner_steps_leave_the_decoder_bit_identical(name):
    model = tiny_vae(name).train()
    strategy = _aggressive(model)
    decoder, encoder = _snapshot(model.decoder), _snapshot(model.encoder)
    updates = strategy._encoder_updates(tiny_batch(), 1.0, LoopState(lr=0.5))
    assert 1 <= updates <= 8
    assert all(torch.equal(v, model.decoder.state_dict()[k]) for k, v in decoder.items())
    assert not all(torch.equal(v, model.encoder.state_dict()[k]) for k, v in encoder.items())

    # the full aggressive step then moves the decoder only
    encoder = _snapshot(model.encoder)
    strategy._encoder_updates = lambda *args: 0
    strategy.step(tiny_batch(), 1.0, LoopState(lr=0.5))
    assert all(torch.equal(v, model.encoder.state_dict()[k]) for k, v in encoder.items())
    assert not all(torch.equal(v, model.decoder.state_dict()[k]) for k, v in decoder.items())


def test_aggressive_mode_ends_at_the_first_fall_of_validation_mi():
    model = tiny_vae("vae").train()
    strategy, state = _aggressive(model), LoopState(lr=0.5)
    notes = [strategy.end_epoch(state, mi) for mi in (0.1, 0.3, 0.3)]
    assert notes == [None, None, None] and state.strategy_state["aggressive"]
    assert "validation MI 0.2000 < 0.3000" in strategy.end_epoch(state, 0.2)
    assert strategy.end_epoch(state, 0.1) is None and state.strategy_state["mi"] == [0.1, 0.3, 0.3, 0.2]
    assert not state.strategy_state["aggressive"]

    # from then on a step is the standard one, bit for bit
    twin = copy.deepcopy(model)
    twin_optimizer = torch.optim.SGD(twin.parameters(), lr=0.5)
    torch.manual_seed(3)
    strategy.step(tiny_batch(), 0.7, state)
    torch.manual_seed(3)
    train_step(twin, twin_optimizer, tiny_batch(), 0.7, 5.0)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), twin.state_dict().values()))


def test_first_epoch_compares_with_zero_as_he_et_al():
    state = LoopState(lr=1.0)
    assert _aggressive(tiny_vae("vae")).end_epoch(state, -0.01) is not None
    assert not state.strategy_state["aggressive"]


def _expected_elbo(model, batch, posterior, noise):
    """Per-example ELBO averaged over fixed noise (K, B, D): common random numbers before and after."""
    with torch.no_grad():
        return torch.stack([-(out.rec + out.kl) for out in
                            (model.elbo(batch, posterior, 1.0, eps) for eps in noise)]).mean(0)


def _informative(model):
    """Weights large enough that z matters to the decoder and the posteriors sit away from the prior
    (the reference initialisation, U(-0.01, 0.01), makes every gradient w.r.t. the posterior ~0)."""
    torch.manual_seed(1)
    with torch.no_grad():
        for layer in (model.encoder.embed.weight, model.encoder.lstm.weight_ih_l0, model.encoder.head.weight,
                      model.decoder.init_state.weight, model.decoder.lstm.weight_ih_l0):
            layer.normal_(0.0, 1.0)
    return model


def test_refinement_raises_every_examples_elbo():
    model = _informative(tiny_vae("vae")).eval()  # no decoder dropout: the objective is the ELBO itself
    batch = tiny_batch(size=4)
    posterior = model.encode(batch)
    torch.manual_seed(0)
    refined = refine(model, batch, posterior, 1.0, steps=20, lr=1.0)
    noise = torch.randn(256, *posterior.mean.shape)
    before = _expected_elbo(model, batch, posterior, noise)
    after = _expected_elbo(model, batch, refined, noise)
    assert (after > before).all(), (before, after)
    assert not refined.mean.requires_grad


def test_encoder_gradient_is_the_derivative_through_the_unrolled_refinement():
    model = _informative(tiny_vae("vae")).double().eval()
    batch = tiny_batch(size=3)
    head = model.encoder.head.weight
    direction = torch.randn_like(head)

    def refined_loss():
        torch.manual_seed(5)  # the same noise at every refinement step of every call
        posterior = model.encode(batch)
        refined = refine(model, batch, posterior, 1.0, steps=3, lr=1.0, create_graph=True)
        return model.elbo(batch, refined, 1.0, torch.zeros_like(refined.mean)).loss

    (grad,) = torch.autograd.grad(refined_loss(), head)
    h, original = 1e-5, head.detach().clone()
    with torch.no_grad():
        head.copy_(original + h * direction)
    up = refined_loss().item()
    with torch.no_grad():
        head.copy_(original - h * direction)
    down = refined_loss().item()
    assert (grad * direction).sum().item() == pytest.approx((up - down) / (2 * h), rel=1e-4)


def test_savi_step_trains_both_networks_from_the_refined_posterior():
    model = tiny_vae("du").train()
    config = _config("du", strategy="savi", svi_steps=2)
    strategy = SemiAmortized(config, model, torch.optim.SGD(model.parameters(), lr=0.5), OneBatch())
    before = _snapshot(model)
    out = strategy.step(tiny_batch(), 1.0, LoopState(lr=0.5))
    assert torch.isfinite(out.loss)
    changed = {k.split(".")[0] for k, v in before.items() if not torch.equal(v, model.state_dict()[k])}
    assert {"encoder", "decoder"} <= changed


@pytest.mark.parametrize("model, strategy", [("vae", "aggressive"), ("mae", "savi")])
def test_resume_is_bit_exact(model, strategy, toy_dataset, tmp_path):
    config = _config(model, strategy=strategy, epochs=3, batch_size=128, checkpoint_every=3, agg_max_inner=4,
                     agg_window=2, svi_steps=2)  # 5 steps per epoch
    # interrupted in epoch 1, aggressive; the last checkpoint is from step 3
    whole, parts, state, resumed = train_whole_and_resumed(config, toy_dataset, tmp_path, 4)

    assert resumed.strategy_state == state.strategy_state
    if strategy == "aggressive":  # resumed inside aggressive mode, which then ended at an epoch end
        assert state.strategy_state["inner_updates"] > 0 and not state.strategy_state["aggressive"]
    assert_same_run(whole, parts)


@pytest.mark.parametrize("args, option", [
    (["--model", "du-iaf", "--strategy", "savi"], "--strategy savi"),
    (["--strategy", "lazy"], "--strategy 'lazy'"),
    (["--strategy", "savi", "--svi-steps", "0"], "--svi-steps 0"),
    (["--model", "mae", "--mae-eta", "-1"], "--mae-eta -1.0"),
])
def test_bad_strategy_options_are_usage_errors(duvae, tmp_path, args, option):
    result = duvae("train", *args, "--run-dir", tmp_path / "run", "--quiet")
    assert result.code == 2 and option in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_posterior_refinement_keeps_a_gaussian_without_context():
    model = tiny_vae("vae").eval()
    batch = tiny_batch(size=2)
    refined = refine(model, batch, model.encode(batch), 1.0, steps=1, lr=0.1)
    assert isinstance(refined, Posterior) and refined.context is None


def test_evaluating_a_savi_run_names_the_amortised_estimators(tmp_path):
    import dataclasses

    from test_evaluate_report import toy_trained

    from duvae_cli.metrics import EvalOptions, evaluate_trained

    trained = toy_trained(tmp_path / "run", model="vae")
    trained.config = dataclasses.replace(trained.config, strategy="savi")
    report = evaluate_trained(trained, "test", EvalOptions(iw_samples=2))
    assert report.estimators["iw_nll"] == "iw-amortised" and report.estimators["mi"] == "whole-set-amortised"
    assert report.estimators["n_examples"] == "count"


@pytest.mark.parametrize("strategy", ["aggressive", "savi"])
def test_strategies_train_the_image_models(strategy, tmp_path):
    import numpy as np

    from test_images_toyrun import write_toy_images

    from duvae_cli.data.store import load_dataset
    from duvae_cli.data.batching import batches_for
    from duvae_cli.config.build import build_image_model
    from duvae_cli.config.resolve import resolve_config
    from duvae_cli.methods import STRATEGIES

    images = batches_for(load_dataset(write_toy_images(tmp_path)).splits["train"])
    config = resolve_config("omniglot", "du", dict(size="small", latent_dim=4, batch_size=8, strategy=strategy,
                                                   agg_max_inner=2, svi_steps=2))
    assert config.agg_window == 10  # the image window (text: 15)
    torch.manual_seed(0)
    model = build_image_model(config).train()
    strategy_ = STRATEGIES[strategy](config, model, torch.optim.Adam(model.parameters(), lr=1e-3), images)
    before = _snapshot(model)
    out = strategy_.step(images.batch(np.arange(8), train=True), 1.0, LoopState(lr=1e-3))
    assert torch.isfinite(out.loss)
    changed = {k.split(".")[0] for k, v in before.items() if not torch.equal(v, model.state_dict()[k])}
    assert {"encoder", "decoder"} <= changed
