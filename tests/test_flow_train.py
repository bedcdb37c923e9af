"""Flow models end to end: named models resolve to (regularizer, flow) with the paper's presets, they
train and resume exactly, and `evaluate` / `classify` use the flow (MC KL, [mu0 ; zT] features)."""

from __future__ import annotations

import json

import pytest
import torch

import test_train_loop as loop_tests
from duvae_cli.errors import UsageError
from duvae_cli.methods.du import DU
from duvae_cli.methods.iaf import IAF
from duvae_cli.methods.bn import BN
from duvae_cli.methods.fb import FreeBits
from duvae_cli.config.build import build_text_model
from duvae_cli.config.resolve import resolve_config
from duvae_cli.methods import FLOW_MODELS
from duvae_cli.train.loop import train
from duvae_cli.runs.run import new_run_dir

from test_probe_toyrun import build_toy_run
from test_train_loop import toy_dataset  # noqa: F401  (fixture)

FLOW_NAMES = sorted(FLOW_MODELS)


@pytest.mark.parametrize("dataset,model,expected", [
    ("yahoo", "du-iaf", dict(gamma=0.7, p=0.7)), ("yelp", "du-iaf", dict(gamma=0.6, p=0.7)),
    ("omniglot", "du-iaf", dict(gamma=0.5, p=0.85)), ("short-yelp", "du-iaf", dict(gamma=0.6, p=0.7)),
    ("yahoo", "iaf-fb", dict(fb_lambda=0.15)), ("yelp", "iaf-fb", dict(fb_lambda=0.25)),
    ("omniglot", "iaf-fb", dict(fb_lambda=0.15)),
    ("synthetic", "iaf-fb", dict(fb_lambda=0.25, flow_width=60)),
    ("yahoo", "iaf-bn", dict(gamma=0.6)), ("yelp", "iaf-bn", dict(gamma=0.7)),
    ("omniglot", "iaf-bn", dict(gamma=0.5)), ("short-yelp", "iaf-bn", dict(gamma=0.7, flow_width=60)),
])
def test_named_flow_models_take_the_paper_presets(dataset, model, expected):
    config = resolve_config(dataset, model)
    assert config.model == model and config.flow == "iaf" and config.flow_depth == 2
    assert {k: getattr(config, k) for k in expected} == expected


@pytest.mark.parametrize("model,regularizer", [("du-iaf", DU), ("iaf-fb", FreeBits), ("iaf-bn", BN)])
def test_a_named_model_builds_its_regularizer_under_an_iaf(model, regularizer):
    config = resolve_config("short-yelp", model, dict(embed_dim=8, hidden_dim=8, flow_depth=3, flow_width=5))
    vae = build_text_model(config, 20)
    assert type(vae.regularizer) is regularizer and isinstance(vae.flow, IAF)
    assert len(vae.flow.blocks) == 3 and vae.flow.blocks[0].made.layers[0].out_features == 5 * 32
    assert vae.encoder.head.out_features == 4 * 32  # mean, raw logvar and the context h (2 x latent)
    if model != "iaf-fb":
        assert vae.regularizer.bn.gamma == config.gamma


def test_any_regularizer_takes_a_flow_but_a_named_model_keeps_its_own():
    config = resolve_config("short-yelp", "vae", dict(flow="iaf"))
    assert config.model == "vae" and build_text_model(config, 20).flow is not None
    assert build_text_model(resolve_config("short-yelp", "du"), 20).flow is None
    with pytest.raises(UsageError, match="--model du-iaf is du with an IAF posterior"):
        resolve_config("short-yelp", "du-iaf", dict(flow="none"))
    with pytest.raises(UsageError, match="--flow 'maf': choose none or iaf"):
        resolve_config("short-yelp", "du", sets=["flow=maf"])


def test_cli_rejects_a_contradictory_flow_in_one_line(duvae):
    result = duvae("train", "--model", "iaf-bn", "--flow", "none")
    assert result.code == 2 and "--flow none contradicts it" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("model", FLOW_NAMES)
def test_a_few_epochs_lower_the_loss(model, toy_dataset, tmp_path):  # noqa: F811
    config = loop_tests._config(model, epochs=3, batch_size=64, warm_up=0.0, kl_start=1.0)
    state = train(config, toy_dataset, new_run_dir(config, tmp_path))
    losses = [row["train_loss"] for row in state.history]
    assert state.step == 30 and all(map(torch.isfinite, map(torch.tensor, losses)))
    assert losses[-1] < losses[0], losses


def test_resume_is_bit_exact_with_a_flow(toy_dataset, tmp_path):  # noqa: F811
    loop_tests.test_resume_is_bit_exact("du-iaf", toy_dataset, tmp_path)


@pytest.fixture(scope="module")
def du_iaf_run(tmp_path_factory):
    return build_toy_run(tmp_path_factory.mktemp("flow"), "du-iaf", run_name="du-iaf")


def test_evaluate_names_the_flow_estimators(duvae, du_iaf_run):
    result = duvae("evaluate", du_iaf_run, "--iw-samples", 20, "--json", "--quiet")
    assert result.code == 0, result.stderr
    metrics = json.loads(result.stdout)["metrics"]
    estimators = {name: m["estimator"] for name, m in metrics.items()}
    assert estimators["kl"] == "mc" and estimators["elbo_nll"] == "mc-rec+mc-kl"
    assert estimators["mi"] == "whole-set-base" and estimators["au"] == "var>=0.01-base"
    assert metrics["iw_nll"]["value"] <= metrics["elbo_nll"]["value"]
    assert metrics["kl"]["value"] == pytest.approx(sum(json.loads(result.stdout)["per_dim"]["kl"]), rel=1e-5)


def test_classify_probes_mu0_and_zt(duvae, du_iaf_run):
    result = duvae("classify", du_iaf_run, "--labels", 20, "--json", "--quiet")
    assert result.code == 0, result.stderr
    from duvae_cli.probe import ClassifyOptions, classify_run

    record = classify_run(du_iaf_run, ClassifyOptions(budgets=(20,), device="cpu")).records[0]
    assert record.weight.shape[1] == 2 * 2  # [mu0 ; zT] of a 2-D latent space
    assert 0.0 <= record.test_accuracy <= 1.0


def test_visualize_samples_runs_on_a_flow_model(duvae, du_iaf_run, tmp_path):
    out = tmp_path / "samples.txt"
    result = duvae("visualize", du_iaf_run, "--kind", "samples", "--n", 2, "--out", out, "--quiet")
    assert result.code == 0, result.stderr
    assert "## reconstructions" in out.read_text()


@pytest.mark.parametrize("model", FLOW_NAMES)
def test_image_models_take_the_flow_too(model):
    """ResNet encoder with the context head, PixelCNN decoder: the IAF ELBO is finite and trains it."""
    from duvae_cli.config.build import build_image_model

    torch.manual_seed(0)
    vae = build_image_model(resolve_config("omniglot", model, dict(size="small", latent_dim=4)))
    assert isinstance(vae.flow, IAF) and vae.encoder.head.out_features == 4 * 4
    x = (torch.rand(6, 1, 28, 28) < 0.3).float()
    out = vae.train()(x)
    out.loss.backward()
    assert torch.isfinite(out.loss) and vae.flow.blocks[0].gate_bias.grad.abs().sum() > 0
    assert vae.eval().features(x).shape == (6, 8)
