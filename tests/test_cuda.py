"""CUDA: the same model gives the same training step and IW-NLL on the GPU as on the CPU.

Skipped without a CUDA device (this project's machines have none; `benchmarks/gpu_check.py` runs the
fuller check on a lent GPU). The last test (slow) rehearses that script on the CPU."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from duvae_cli.data.batching import TextBatches
from duvae_cli.metrics import EvalOptions, score_examples
from duvae_cli.data.batching import make_batch
from duvae_cli.config.build import build_text_model
from duvae_cli.config.resolve import resolve_config


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


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
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


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_iw_nll_agrees_on_cpu_and_cuda(toy):
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    model, tokens, offsets = toy
    split = _Split(tokens, offsets)
    options = EvalOptions(iw_samples=50)
    a = score_examples(model, TextBatches(split), options)["iw_nll"]
    b = score_examples(copy.deepcopy(model).cuda(), TextBatches(split), options)["iw_nll"]
    assert np.abs(a - b).max() < 1e-3


SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "reference" / "reference_bench.py").exists(), reason="../shared is absent")
def test_the_gpu_check_rehearses_end_to_end_on_the_cpu(tmp_path):
    """`gpu_check.py --rehearse`: every part of the GPU session on the CPU with tiny workloads, so a
    crash is found here and not in the lent GPU's 15 minutes. Its numbers mean nothing; the CPU
    "agrees with itself" exactly, and every workload of the table has both codes' figures."""
    out = tmp_path / "gpu_check.json"
    done = subprocess.run([sys.executable, str(Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"),
                           "--rehearse", "--out", str(out)], capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["train"]["ok"] and result["iw"]["ok"]
    assert {(r["workload"], r["code"]) for r in result["rows"]} == {
        (f"{what}:{size}", code) for what in ("train", "iw") for size in ("short-yelp", "yelp")
        for code in ("reference", "duvae")}
