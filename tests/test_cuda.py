"""CUDA: the same model gives the same training step and IW-NLL on the GPU as on the CPU.

Skipped without a CUDA device (this project's machines have none; `benchmarks/gpu_check.py` runs the
fuller check on a lent GPU)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from duvae_cli.metrics import EvalOptions, TextExamples, score_examples
from duvae_cli.train.batching import make_batch
from duvae_cli.train.build import build_text_model
from duvae_cli.train.config import resolve_config

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]


class _Split:
    def __init__(self, tokens, offsets):
        self.tokens, self.offsets = tokens, offsets


@pytest.fixture()
def toy():
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 9, size=12)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    tokens = rng.integers(4, 40, size=int(offsets[-1])).astype(np.int32)
    config = resolve_config("synthetic", "du", dict(embed_dim=16, hidden_dim=24, latent_dim=4, p=1.0,
                                                     dropout_in=0.0, dropout_out=0.0, precision="fp32"))
    torch.manual_seed(0)
    return build_text_model(config, 40), tokens, offsets


def test_a_training_step_agrees_on_cpu_and_cuda(toy):
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    model, tokens, offsets = toy
    gpu = copy.deepcopy(model).cuda()
    batch = make_batch(tokens, offsets, np.arange(8))
    eps = torch.randn(8, 4)
    a, b = model.train()(batch, 1.0, eps), gpu.train()(batch.to("cuda"), 1.0, eps.cuda())
    a.loss.backward()
    b.loss.backward()
    assert float(b.loss) == pytest.approx(float(a.loss), rel=1e-5)
    for (name, p), q in zip(model.named_parameters(), gpu.parameters()):
        if p.grad is not None:
            assert torch.allclose(q.grad.cpu(), p.grad, rtol=1e-4, atol=1e-6), name


def test_iw_nll_agrees_on_cpu_and_cuda(toy):
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    model, tokens, offsets = toy
    split = _Split(tokens, offsets)
    options = EvalOptions(iw_samples=50)
    a = score_examples(model, TextExamples(split), options)["iw_nll"]
    b = score_examples(copy.deepcopy(model).cuda(), TextExamples(split), options)["iw_nll"]
    assert np.abs(a - b).max() < 1e-3
