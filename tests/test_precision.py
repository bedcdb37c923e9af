"""`--precision`: bf16 autocast on the CPU gives the fp32 numbers within stated tolerances; fp16 needs CUDA.

No GPU here, so bf16 is checked on the CPU (torch.autocast("cpu", bfloat16)), where the LSTMs and
matrix products run in bfloat16 (8 significant bits) and the losses in float32.
"""

from __future__ import annotations

import json

import pytest
import torch

from test_probe_toyrun import build_toy_run

from duvae_cli.metrics import EvalOptions, evaluate_run
from duvae_cli.data.batching import batches_for
from duvae_cli.runtime.precision import Precision
from duvae_cli.runs.load import load_trained

EVAL = EvalOptions(iw_samples=16, batch_size=32)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("precision")
    return {name: build_toy_run(root, "du", epochs=2, run_name=name, precision=name) for name in ("fp32", "bf16")}


def test_the_precision_is_recorded_in_config_json(runs):
    for name, run in runs.items():
        assert json.loads((run / "config.json").read_text())["precision"] == name


def test_bf16_forward_loss_is_within_one_percent_of_fp32(runs):
    """The same trained weights and batch: the loss under bf16 autocast vs fp32 (a property of the
    autocast numerics alone, no training noise)."""
    trained = load_trained(runs["fp32"], "last")
    model, data = trained.model.train(), batches_for(trained.dataset.splits["valid"])
    batch = data.batch(data.plan(64)[0])
    eps = torch.randn(len(batch), trained.config.latent_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full = model(batch, 1.0, eps=eps)
        with Precision("bf16").autocast():
            half = model(batch, 1.0, eps=eps)
    assert half.loss.dtype == torch.float32  # losses are reduced in float32 under autocast
    assert float(half.loss) == pytest.approx(float(full.loss), rel=0.01)


def test_bf16_training_then_evaluation_is_close_to_fp32(runs):
    """Two epochs in bf16 vs fp32 from the same seed, both evaluated in fp32: the trajectories part
    with rounding, so this is a tolerance of training noise (measured: IW-NLL 22.70 vs 22.64 nats,
    0.3%). KL, MI and AU are not compared: after 2 epochs the toy model's KL is ~0.03-0.05 nats and
    its one active unit sits at the AU threshold, where any rounding flips the count."""
    metrics = {name: evaluate_run(run, "test", "last", EVAL, device="cpu").metrics for name, run in runs.items()}
    for name in ("iw_nll", "elbo_nll", "rec"):
        assert metrics["bf16"][name] == pytest.approx(metrics["fp32"][name], rel=0.01), name


def test_fp16_on_the_cpu_is_a_usage_error(duvae, tmp_path):
    result = duvae("train", "--precision", "fp16", "--device", "cpu", "--run-dir", tmp_path / "run",
                   "--set", f"data_root={tmp_path / 'data'}")
    assert result.code == 2
    assert result.stderr.strip() == ("duvae: error: --precision fp16: needs a CUDA device (fp16 autocast "
                                     "with loss scaling); on the CPU use bf16")
    assert not (tmp_path / "run").exists() and not (tmp_path / "data").exists()


def test_an_unknown_precision_names_the_choices(duvae):
    result = duvae("train", "--precision", "fp8")
    assert result.code == 2 and result.stderr.strip() == "duvae: error: --precision 'fp8': choose auto, fp32, bf16 or fp16"


@pytest.mark.parametrize("name", ["du", "bn", "mae", "vae"])
def test_under_bf16_autocast_the_latent_path_is_exact_float32(name):
    """Only the networks run in bf16: the encoder's head, the regularizer, z and the KL are float32,
    and equal, bit for bit, the float32 computation from the encoder's (bf16) LSTM state. (Rounding
    the means to bf16 before BN, as autocast alone would, changes them by up to 2^-9 of their size,
    which BN magnifies where the batch's means differ by little.)"""
    from test_models_vae import tiny_batch, tiny_vae

    from duvae_cli.models.gaussian import kl_standard_normal
    from duvae_cli.models.lstm import run_lstm

    model, batch = tiny_vae(name).train(), tiny_batch()
    eps = torch.randn(len(batch), model.encoder.head.out_features // 2)
    torch.manual_seed(1)
    with Precision("bf16").autocast():
        out = model(batch, 1.0, eps=eps)
        states, _ = run_lstm(model.encoder.lstm, model.encoder.embed(batch.tokens))
    assert states.dtype == torch.bfloat16  # the network itself does run in bf16
    for tensor in (out.mean, out.logvar, out.z, out.kl, out.kl_term, out.rec, out.loss):
        assert tensor.dtype == torch.float32
    last = states[torch.arange(len(batch)), batch.lengths - 1].float()
    mean, logvar = model.encoder.head(last).chunk(2, dim=-1)
    torch.manual_seed(1)  # the same dropout draw
    mean, logvar = model.regularizer.posterior(mean, logvar, 1.0)
    assert torch.equal(out.mean, mean) and torch.equal(out.logvar, logvar)
    assert torch.equal(out.z, mean + eps * (0.5 * logvar).exp())
    assert torch.equal(out.kl, kl_standard_normal(mean, logvar).sum(-1))


@pytest.mark.parametrize("model", ["vae", "beta", "fb", "delta", "bn", "du", "mae"])
def test_auto_picks_bf16_only_for_models_within_seed_noise(model, monkeypatch):
    """On bf16 hardware `auto` means bf16 for the text models whose parity held (vae, beta, fb,
    delta), fp32 with the reason for DU-VAE and BN-VAE, whose bf16 results moved beyond seed noise,
    and fp32 for the models not measured (MAE)."""
    from duvae_cli.config import decide_runtime, resolve_config
    from duvae_cli.runtime import precision

    monkeypatch.setattr(precision, "native_bf16", lambda device: "avx512_bf16")
    config = resolve_config("short-yelp", model, {"device": "cpu"})
    runtime = decide_runtime(config, "text")
    name, why = runtime.precision, runtime.precision_reason
    if model in ("vae", "beta", "fb", "delta"):
        assert (name, why) == ("bf16", "auto: avx512_bf16")
    else:
        assert name == "fp32"
        assert ("seed noise" in why) == (model in ("du", "bn"))
        assert ("not established" in why) == (model not in ("du", "bn"))


@pytest.mark.parametrize("model", ["du", "vae", "bn"])
@pytest.mark.parametrize("hardware", ["avx512_bf16", None])
def test_auto_for_image_models_follows_the_omniglot_parity_run(model, hardware, monkeypatch):
    """Images: `auto` means bf16 for DU-VAE where the device has native bf16 units (its Omniglot
    parity run held, docs/benchmarks.md), fp32 without them, and fp32 for the image models whose
    parity was not measured."""
    from duvae_cli.config import decide_runtime, resolve_config
    from duvae_cli.runtime import precision

    monkeypatch.setattr(precision, "native_bf16", lambda device: hardware)
    runtime = decide_runtime(resolve_config("omniglot", model, {"device": "cpu"}), "image")
    if model == "du" and hardware:
        assert (runtime.precision, runtime.precision_reason) == ("bf16", "auto: avx512_bf16")
    else:
        assert runtime.precision == "fp32"
        assert ("not established" in runtime.precision_reason) == (model != "du")
