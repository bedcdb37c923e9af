"""Input-convex networks and the injective maps LIDVAE builds from their gradients (Wang, Blei &
Cunningham, NeurIPS 2021; IL-LIDVAE: Kinoshita et al., ICML 2023); the decoders built from them are
in models/injective.py. docs/training.md, "LIDVAE and IL-LIDVAE".

ICNN (the layers of the official code, lidvae-public `dec_lstm.py`), input y (..., n), widths m_0..m_{L-1},
s = LeakyReLU(0.2):

    h_0 = s(A_0 y + b_0)^2
    h_k = s(W_{k-1} h_{k-1} + A_k y + b_k)            k = 1 .. L-1
    f(y) = s(W_{L-1} h_{L-1} + A_L y + b_L) + (q/2) ||y||^2          (a scalar per row)

f is convex in y: s(u)^2 is convex, W >= 0 keeps non-negative sums of convex functions convex, s is
convex and non-decreasing, A y + b is affine, and q >= 0. W = softplus(V) > 0 (the official code's
clamp(W, min=0.01) has zero gradient at its initial values, so its W stayed 0.01). The A_k, b_k keep
PyTorch's Linear initialisation; W starts at mean 1/sqrt(fan-in) (`_positive_init`).

`gradient(y)` = grad_y f by an explicit backward pass (the chain rule written out): ordinary
differentiable tensor operations, so the training gradient of the map is plain backprop, and it
works under `torch.no_grad()` / `torch.inference_mode()`, where validation and evaluation run and
`torch.autograd.grad` cannot. The gradient of a convex function is monotone:
(grad f(y1) - grad f(y2)) . (y1 - y2) >= q ||y1 - y2||^2.

`BrenierMap` = grad Psi_2 o beta o grad Psi_1 : R^n -> R^m (m >= n), beta(u) = [u ; N u] + b. beta is
injective with ||beta(u) - beta(v)|| >= ||u - v||, so with quadratic weights q_1 = L, q_2 = 1 the map is
L-inverse-Lipschitz: ||g(y1) - g(y2)|| >= L ||y1 - y2|| (IL-LIDVAE).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SLOPE = 0.2  # LeakyReLU's negative slope (official code)


def _act(u: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(u, SLOPE)


def _slope(u: torch.Tensor) -> torch.Tensor:
    """s'(u): 1 where u > 0, else 0.2 (autograd's choice at 0 too)."""
    return torch.where(u > 0, 1.0, SLOPE).to(u.dtype)


def _positive_init(rows: int, columns: int) -> torch.Tensor:
    """V with softplus(V) ~ U(0.5, 1.5) / sqrt(columns): W of mean 1/sqrt(fan-in), so that the
    gradient map starts with a Jacobian of order 1 (measured: top singular values 0.3-3 at the
    presets' sizes). The official W = 0.01 gives 0.01-0.02, a map that ignores its input."""
    weight = torch.empty(rows, columns).uniform_(0.5, 1.5) / math.sqrt(columns)
    return torch.log(torch.expm1(weight))


class ICNN(nn.Module):
    """A convex function f : R^n -> R (module docstring) and its gradient."""

    def __init__(self, in_dim: int, widths: tuple[int, ...], quadratic: float = 0.0):
        super().__init__()
        if not widths or min(widths) < 1 or quadratic < 0:
            raise ValueError(f"an ICNN needs widths >= 1 and quadratic >= 0, got {widths}, {quadratic}")
        self.quadratic = float(quadratic)
        self.inputs = nn.ModuleList(nn.Linear(in_dim, width) for width in (*widths, 1))  # A_k y + b_k
        self.raw_weights = nn.ParameterList(  # V_k, W_k = softplus(V_k) of shape (m_{k+1}, m_k)
            nn.Parameter(_positive_init(out, width)) for width, out in zip(widths, (*widths[1:], 1)))

    def weights(self) -> list[torch.Tensor]:
        return [F.softplus(raw) for raw in self.raw_weights]

    def _pre_activations(self, y: torch.Tensor, weights: list[torch.Tensor]) -> list[torch.Tensor]:
        """[A_0 y + b_0, u_1, ..., u_L]: the argument of every activation, (..., m_k); u_L (..., 1)."""
        pre = [self.inputs[0](y)]
        hidden = _act(pre[0]).pow(2)
        for layer, weight in enumerate(weights, start=1):
            pre.append(F.linear(hidden, weight) + self.inputs[layer](y))
            hidden = _act(pre[-1])
        return pre

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """f(y), (...,) for y (..., n)."""
        pre = self._pre_activations(y, self.weights())
        return _act(pre[-1]).squeeze(-1) + 0.5 * self.quadratic * y.pow(2).sum(-1)

    def gradient(self, y: torch.Tensor) -> torch.Tensor:
        """grad_y f(y), (..., n): the backward pass of `forward` written out."""
        weights = self.weights()
        pre = self._pre_activations(y, weights)
        delta = _slope(pre[-1])  # (..., 1): df/du_L
        grad = delta @ self.inputs[-1].weight  # A_L^T delta
        for layer in range(len(weights) - 1, -1, -1):
            upstream = delta @ weights[layer]  # df/dh_layer, (..., m_layer)
            if layer > 0:
                delta = upstream * _slope(pre[layer])
            else:  # h_0 = s(a)^2: dh/da = 2 s(a) s'(a)
                delta = upstream * 2 * _act(pre[0]) * _slope(pre[0])
            grad = grad + delta @ self.inputs[layer].weight  # + A_layer^T delta
        return grad + self.quadratic * y if self.quadratic else grad


class PadLinear(nn.Module):
    """beta(u) = [u ; N u] + b : R^n -> R^m, m >= n. Injective, and ||beta(u) - beta(v)||^2 =
    ||u - v||^2 + ||N (u - v)||^2 >= ||u - v||^2: the smallest singular value is >= 1, exactly,
    whatever N learns (no SVD per forward, as the official full-rank layer needs)."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        if out_dim < in_dim:
            raise ValueError(f"an injective linear map needs out_dim >= in_dim, got {in_dim} -> {out_dim}")
        self.lower = nn.Parameter(torch.empty(out_dim - in_dim, in_dim))  # N
        self.bias = nn.Parameter(torch.zeros(out_dim))
        bound = 1.0 / math.sqrt(in_dim)
        nn.init.uniform_(self.lower, -bound, bound)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return torch.cat([u, F.linear(u, self.lower)], dim=-1) + self.bias


class BrenierMap(nn.Module):
    """g = grad Psi_2 o beta o grad Psi_1 : R^n -> R^m, Psi_i an ICNN plus (q_i / 2) ||.||^2."""

    def __init__(self, in_dim: int, out_dim: int, latent_widths: tuple[int, ...],
                 data_widths: tuple[int, ...], latent_quadratic: float = 0.0, data_quadratic: float = 0.0):
        super().__init__()
        self.latent_side = ICNN(in_dim, latent_widths, latent_quadratic)  # Psi_1 on R^n
        self.beta = PadLinear(in_dim, out_dim)
        self.data_side = ICNN(out_dim, data_widths, data_quadratic)  # Psi_2 on R^m

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """(..., n) -> (..., m)."""
        return self.data_side.gradient(self.beta(self.latent_side.gradient(y)))
