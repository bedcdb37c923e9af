"""The training loop: every regularizer learns, resume is bit-exact, the NaN guard stops cleanly."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from interrupting import assert_same_run, train_whole_and_resumed

from duvae_cli.errors import DuvaeError
from duvae_cli.methods import REGULARIZERS
from duvae_cli.config.resolve import resolve_config
from duvae_cli.train.loop import train
from duvae_cli.train.schedule import kl_weight_at
from duvae_cli.runs.checkpoint import load_checkpoint
from duvae_cli.runs.run import new_run_dir


def _split(n: int, rng: np.random.Generator, vocab: int) -> SimpleNamespace:
    """Sentences whose tokens follow a per-sentence 'topic', so a latent code is worth learning."""
    lengths = rng.integers(3, 9, n)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    topic = rng.integers(0, 2, n).repeat(lengths)
    tokens = 4 + topic * (vocab - 4) // 2 + rng.integers(0, (vocab - 4) // 2, offsets[-1])
    return SimpleNamespace(tokens=tokens.astype(np.int32), offsets=offsets, labels=None)


@pytest.fixture(scope="module")
def toy_dataset():
    rng = np.random.default_rng(0)
    return SimpleNamespace(vocab=[f"w{i}" for i in range(24)], kind="text", sha256="toy",
                           splits={"train": _split(640, rng, 24), "valid": _split(96, rng, 24)})


def _config(model: str, **overrides):
    base = dict(embed_dim=16, hidden_dim=16, latent_dim=2, epochs=2, warm_up=1.0, eval_batch_size=64)
    return resolve_config("synthetic", model, {**base, **overrides})


def _params(run_dir: Path, name: str = "last.safetensors") -> dict:
    return load_checkpoint(run_dir / "checkpoints" / name)["model"]


@pytest.mark.parametrize("model", sorted(n for n, cls in REGULARIZERS.items() if "text" in cls.capabilities.data))
def test_thirty_steps_lower_the_loss(model, toy_dataset, tmp_path):
    config = _config(model, epochs=3, batch_size=64, warm_up=0.0, kl_start=1.0)  # 10 steps/epoch
    state = train(config, toy_dataset, new_run_dir(config, tmp_path))
    losses = [row["train_loss"] for row in state.history]
    assert state.step == 30
    assert losses[-1] < losses[0], losses


def test_kl_weight_anneals_linearly_per_step():
    config = _config("vae", kl_start=0.0, warm_up=2.0)
    weights = [kl_weight_at(config, step, steps_per_epoch=5) for step in range(12)]
    assert weights[:3] == pytest.approx([0.1, 0.2, 0.3])
    assert weights[9:] == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("model", ["du", "vae"])
def test_resume_is_bit_exact(model, toy_dataset, tmp_path):
    config = _config(model, checkpoint_every=7)
    whole, parts, _, _ = train_whole_and_resumed(config, toy_dataset, tmp_path, 17)  # last checkpoint: step 14
    assert_same_run(whole, parts)


def test_nan_guard_stops_with_one_line_and_keeps_checkpoint(toy_dataset, tmp_path, monkeypatch):
    config = _config("vae", epochs=2)
    run_dir = new_run_dir(config, tmp_path)
    train(config, toy_dataset, run_dir)
    before = (run_dir / "checkpoints" / "last.safetensors").read_bytes()

    from duvae_cli.models.text import LSTMDecoder

    original = LSTMDecoder.log_prob
    monkeypatch.setattr(LSTMDecoder, "log_prob", lambda self, b, z: original(self, b, z) * float("nan"))
    with pytest.raises(DuvaeError) as error:
        train(_config("vae", epochs=3), toy_dataset, run_dir, resume=True)
    message = str(error.value)
    assert "non-finite loss at step 41" in message and "rec nan" in message and "\n" not in message
    assert (run_dir / "checkpoints" / "last.safetensors").read_bytes() == before


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
def test_clip_gradients_matches_torch_bit_for_bit(scale):
    from duvae_cli.optim import clip_gradients

    torch.manual_seed(0)
    grads = [torch.randn(5, 3) * scale, torch.randn(7) * scale]
    mine = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
    theirs = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
    for p, q, g in zip(mine, theirs, grads):
        p.grad, q.grad = g.clone(), g.clone()
    norm = clip_gradients([p.grad for p in mine], 5.0)
    expected = torch.nn.utils.clip_grad_norm_(theirs, 5.0)
    assert norm == pytest.approx(float(expected), rel=1e-6)
    for p, q in zip(mine, theirs):
        assert torch.equal(p.grad, q.grad)
