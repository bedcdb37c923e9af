"""The bf16 CPU LSTM (models/lstm.py) is nn.LSTM's function: exactly, when its products run in
float64, and to bf16 rounding in bf16; `run_lstm` uses it only under CPU bf16 autocast."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from duvae_cli.models import lstm as fast


def _grads(outputs, weights, inputs):
    out, (h, c) = outputs
    loss = (out * weights[0]).sum() + (h * weights[1]).sum() + (c * weights[2]).sum()
    return torch.autograd.grad(loss, inputs)


@pytest.mark.parametrize("with_state", [False, True])
def test_float64_products_give_nn_lstm_exactly(with_state):
    torch.manual_seed(0)
    module = nn.LSTM(6, 8, batch_first=True).double()
    x = torch.randn(5, 7, 6, dtype=torch.float64, requires_grad=True)
    state = tuple(torch.randn(1, 5, 8, dtype=torch.float64, requires_grad=True) for _ in range(2))
    state = state if with_state else None
    ours, theirs = fast.lstm_bf16(module, x, state, dtype=torch.float64), module(x, state)
    for a, b in zip([ours[0], *ours[1]], [theirs[0], *theirs[1]]):
        assert torch.allclose(a, b, rtol=0, atol=1e-14)
    weights = [torch.randn_like(t) for t in (theirs[0], *theirs[1])]
    inputs = [x, *module.parameters(), *(state or ())]
    for a, b in zip(_grads(ours, weights, inputs), _grads(theirs, weights, inputs)):
        assert torch.allclose(a, b, rtol=0, atol=1e-12)


def test_bf16_products_stay_within_bf16_rounding_of_fp32():
    torch.manual_seed(0)
    module = nn.LSTM(16, 32, batch_first=True)
    x = torch.randn(4, 9, 16, requires_grad=True)
    out, _ = fast.lstm_bf16(module, x)
    reference, _ = module(x)
    assert out.dtype == torch.bfloat16
    assert (out.float() - reference).abs().max() < 2e-2  # bf16 keeps 8 bits: ~4e-3 relative per product
    grad = torch.autograd.grad(out.float().sum(), module.weight_hh_l0)[0]
    exact = torch.autograd.grad(reference.sum(), module.weight_hh_l0)[0]
    assert (grad - exact).norm() / exact.norm() < 3e-2
    assert grad.dtype == torch.float32  # gradients land in the parameters' dtype


def test_run_lstm_takes_the_bf16_path_only_under_cpu_bf16_autocast(monkeypatch):
    calls = []
    monkeypatch.setattr(fast, "lstm_bf16", lambda *a, **k: calls.append(1) or ("ours", None))
    module, x = nn.LSTM(4, fast.MIN_HIDDEN, batch_first=True), torch.randn(2, 3, 4)
    fast.run_lstm(module, x)
    assert not calls  # fp32: nn.LSTM itself
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert fast.run_lstm(module, x)[0] == "ours"
    small = nn.LSTM(4, fast.MIN_HIDDEN // 2, batch_first=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast.run_lstm(small, x)  # a small LSTM stays on oneDNN's own bf16 kernel
    assert calls == [1]
