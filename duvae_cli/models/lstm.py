"""One-layer LSTM for bf16 training on the CPU: the function of `nn.LSTM` (batch first, PyTorch's
gate order i, f, g, o, the module's own parameters), laid out for bf16 matrix units.

Why: under CPU autocast, oneDNN's LSTM backward is no faster in bf16 than in fp32 on the project's
machine (docs/benchmarks.md), so it becomes the largest part of a bf16 training step. Here every
product that spans the whole sequence is one bf16 GEMM (the input projection forward; the input
gradient and both weight gradients backward) and only the recurrent product h_{t-1} W_hh^T is taken
per step; gate arithmetic and the cell state stay fp32. `run_lstm` picks it under CPU bf16 autocast
and `nn.LSTM` everywhere else (fp32, and CUDA, where cuDNN's bf16 LSTM is already fast).
"""

from __future__ import annotations

import torch
from torch import nn


MIN_HIDDEN = 1024  # below this, oneDNN's own bf16 LSTM is as fast or faster (per-step Python overhead)


def run_lstm(lstm: nn.LSTM, inputs: torch.Tensor, state=None):
    """`lstm(inputs, state)`: outputs (B, T, H) and (h_n, c_n) (1, B, H) each."""
    if inputs.device.type == "cpu" and lstm.hidden_size >= MIN_HIDDEN and torch.is_autocast_enabled("cpu") \
            and torch.get_autocast_dtype("cpu") == torch.bfloat16:
        return lstm_bf16(lstm, inputs, state)
    return lstm(inputs, state)


def lstm_bf16(lstm: nn.LSTM, inputs: torch.Tensor, state=None, dtype: torch.dtype = torch.bfloat16):
    """The LSTM with its products in `dtype` (bf16; tests pass float64 to check the maths)."""
    batch, hidden = inputs.shape[0], lstm.hidden_size
    if state is None:
        zeros = inputs.new_zeros(batch, hidden, dtype=_accumulator(dtype))
        h0, c0 = zeros, zeros
    else:
        h0, c0 = state[0][0], state[1][0]
    outputs, h_n, c_n = _LSTMFunction.apply(inputs, h0, c0, lstm.weight_ih_l0, lstm.weight_hh_l0,
                                            lstm.bias_ih_l0, lstm.bias_hh_l0, dtype)
    return outputs, (h_n.unsqueeze(0), c_n.unsqueeze(0))


class _LSTMFunction(torch.autograd.Function):
    """Forward and backward by hand, so that the per-step work is one GEMM and a few fused
    element-wise ops, and the weight gradients are one GEMM over all T x B rows."""

    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh, dtype):
        with torch.autocast("cpu", enabled=False):
            return _forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh, dtype)

    @staticmethod
    def backward(ctx, d_out, d_hn, d_cn):
        with torch.autocast("cpu", enabled=False):
            return _backward(ctx, d_out, d_hn, d_cn)


def _forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh, dtype):
    batch, steps, _ = x.shape
    hidden = w_hh.shape[1]
    acc = _accumulator(dtype)  # gates and cell state
    w_ih_c, w_hh_c = w_ih.to(dtype), w_hh.to(dtype)  # (4H, I), (4H, H)
    x_tm = x.transpose(0, 1).to(dtype).contiguous()  # (T, B, I), time-major
    # gates[t] = x_t W_ih^T + b: one GEMM over all T x B rows; the recurrent part is added per step.
    gates = torch.mm(x_tm.view(steps * batch, -1), w_ih_c.t()).to(acc).view(steps, batch, 4 * hidden)
    gates += (b_ih + b_hh).to(acc)
    h_all = x.new_empty(steps + 1, batch, hidden, dtype=dtype)  # h_0 .. h_T in the product dtype
    c_all = x.new_empty(steps + 1, batch, hidden, dtype=acc)  # c_0 .. c_T
    h_all[0], c_all[0] = h0, c0
    w_hh_t = w_hh_c.t()  # (H, 4H)
    h = h0.to(acc)
    for t in range(steps):
        a = gates[t]  # (B, 4H): becomes the activated gates i, f, g, o in place
        a += torch.mm(h_all[t], w_hh_t)
        a[:, : 2 * hidden].sigmoid_()
        a[:, 2 * hidden: 3 * hidden].tanh_()
        a[:, 3 * hidden:].sigmoid_()
        i, f, g, o = a.chunk(4, dim=1)
        c = torch.mul(f, c_all[t], out=c_all[t + 1]).addcmul_(i, g)  # c_t = f c_{t-1} + i g
        h = torch.tanh(c).mul_(o)  # h_t = o tanh(c_t)
        h_all[t + 1] = h
    ctx.save_for_backward(x_tm, w_ih_c, w_hh_c, gates, h_all, c_all)
    ctx.dtypes = x.dtype, h0.dtype, w_ih.dtype
    outputs = h_all[1:].transpose(0, 1).contiguous()  # (B, T, H)
    return outputs, h, c_all[steps].clone()


def _backward(ctx, d_out, d_hn, d_cn):
    x_tm, w_ih_c, w_hh_c, gates, h_all, c_all = ctx.saved_tensors
    steps, batch, _ = x_tm.shape
    hidden, acc, dtype = h_all.shape[2], c_all.dtype, x_tm.dtype
    d_out = d_out.transpose(0, 1).to(acc)  # (T, B, H)
    dh = d_hn.to(acc).clone() if d_hn is not None else c_all.new_zeros(batch, hidden)
    dc = d_cn.to(acc).clone() if d_cn is not None else c_all.new_zeros(batch, hidden)
    d_gates = x_tm.new_empty(steps, batch, 4 * hidden)  # in the product dtype, for the GEMMs below
    for t in reversed(range(steps)):
        i, f, g, o = gates[t].chunk(4, dim=1)
        dh += d_out[t]
        tanh_c = torch.tanh(c_all[t + 1])
        dc.addcmul_(dh * o, 1 - tanh_c * tanh_c)  # through h_t = o tanh(c_t)
        da = torch.cat([dc * g * i * (1 - i),  # input gate (sigmoid')
                        dc * c_all[t] * f * (1 - f),  # forget gate
                        dc * i * (1 - g * g),  # cell candidate (tanh')
                        dh * tanh_c * o * (1 - o)], dim=1)  # output gate
        dc.mul_(f)  # to c_{t-1}
        d_gates[t] = da
        dh = torch.mm(d_gates[t], w_hh_c).to(acc)  # to h_{t-1}
    input_dtype, state_dtype, weight_dtype = ctx.dtypes
    rows = d_gates.view(steps * batch, 4 * hidden)  # one GEMM each over all T x B rows:
    d_w_hh = torch.mm(rows.t(), h_all[:steps].reshape(steps * batch, hidden)).to(weight_dtype)
    d_w_ih = torch.mm(rows.t(), x_tm.view(steps * batch, -1)).to(weight_dtype)
    d_x = torch.mm(rows, w_ih_c).view(steps, batch, -1).transpose(0, 1).to(input_dtype)
    d_b = rows.sum(0, dtype=acc).to(weight_dtype)
    return d_x, dh.to(state_dtype), dc.to(state_dtype), d_w_ih, d_w_hh, d_b, d_b, None


def _accumulator(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32
