"""The one VAE: `VAE(encoder, decoder, regularizer, flow=None)`. The ELBO is assembled here only.

Per example: loss = rec + kl_weight * kl_term, with rec = -log p(x|z) for one z ~ q(z|x) and
kl_term = the regularizer's view of KL(q(z|x) || N(0, I)); the training loss is the batch mean.

q(z|x) is the encoder's Gaussian N(mu0, sigma0^2) after the regularizer's `posterior` hook, and with
a flow (methods/iaf.py) z = flow(z0) for z0 from that Gaussian. The KL per dimension is analytic
without a flow and the one-sample Monte Carlo log q(z|x)_d - log N(z_d; 0, 1) with one.

Mixed precision: under autocast only the encoder's and decoder's networks run in bf16/fp16; the
latent path (the posterior's parameters, the regularizer, the flow, z and the KL) stays float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from duvae_cli.models import gaussian
from duvae_cli.models.gaussian import LOG_2PI, float32_region, kl_standard_normal, widen
from duvae_cli.models.regularizer import Regularizer


@dataclass
class VAEOutput:
    loss: torch.Tensor  # () batch mean of rec + kl_weight * kl_term (+ the regularizer's extra_loss)
    rec: torch.Tensor  # (B,) -log p(x|z), nats
    kl: torch.Tensor  # (B,) KL(q(z|x) || p(z)), nats
    kl_term: torch.Tensor  # (B,) the KL as the regularizer puts it in the loss
    mean: torch.Tensor  # (B, D) posterior mean after the regularizer (the base mu0 with a flow)
    logvar: torch.Tensor  # (B, D) posterior log-variance after the regularizer (base, with a flow)
    z: torch.Tensor | None = None  # (B, D) the sample decoded (zT with a flow)
    log_q: torch.Tensor | None = None  # (B,) log q(z|x) of that sample, nats
    grad_norm: float | None = None  # global gradient norm before clipping (set by the training step)


class Posterior(NamedTuple):
    mean: torch.Tensor  # (B, D) mu0, after the regularizer
    logvar: torch.Tensor  # (B, D) log sigma0^2, after the regularizer
    context: torch.Tensor | None  # (B, C) the flow's context vector h; None without a flow


class VAE(nn.Module):
    def __init__(self, encoder: nn.Module, decoder: nn.Module, regularizer: Regularizer,
                 flow: nn.Module | None = None):
        super().__init__()
        self.encoder, self.decoder, self.regularizer, self.flow = encoder, decoder, regularizer, flow

    def encode(self, x, kl_weight: float = 1.0) -> Posterior:
        """The base Gaussian after the regularizer's reshaping, and the flow's context if any."""
        mean, logvar, *context = self.encoder(x)
        if self.flow is not None and not context:
            raise ValueError("a flow needs an encoder that also returns its context (context_dim > 0)")
        with float32_region(mean.device):
            mean, logvar = self.regularizer.posterior(widen(mean), widen(logvar), kl_weight)
        return Posterior(mean, logvar, widen(context[0]) if self.flow is not None else None)

    def posterior(self, x, kl_weight: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x) as (mean, logvar), (B, D) each, after the regularizer's reshaping; with a flow, the
        base Gaussian q(z0|x) (what MI, AU and the latent figures read)."""
        posterior = self.encode(x, kl_weight)
        return posterior.mean, posterior.logvar

    def draw(self, posterior: Posterior, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z ~ q(z|x) from standard-normal eps, (B, D) or K per example (B, K, D), and log q(z|x)
        per coordinate (same shape): log N(z0; mu0, sigma0^2), pushed through the flow if any."""
        mean, logvar, context = posterior
        if eps.dim() == mean.dim() + 1:  # K samples per example
            mean, logvar = mean.unsqueeze(-2), logvar.unsqueeze(-2)
            context = None if context is None else context.unsqueeze(-2)
        z, log_q = gaussian.draw(mean, logvar, eps)
        if self.flow is not None:
            z, log_q = self.flow(z, context, log_q)
        return z, log_q

    def kl_per_dim(self, posterior: Posterior, z: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
        """KL(q(z|x) || N(0, I)) per dimension (B, D): analytic for a Gaussian; with a flow the
        one-sample Monte Carlo estimate log q(z|x)_d - log N(z_d; 0, 1) at the drawn z."""
        if self.flow is None:
            return kl_standard_normal(posterior.mean, posterior.logvar)
        return log_q + 0.5 * (LOG_2PI + z.pow(2))

    def forward(self, x, kl_weight: float = 1.0, eps: torch.Tensor | None = None) -> VAEOutput:
        """The training loss of batch `x`; `eps` (B, D) as in `elbo` (data-parallel training passes
        its shard of the global batch's noise, train/parallel.py). In training only, the batch mean
        of the regularizer's `extra_loss` (CR-VAE's consistency term), if it has one, is added."""
        posterior = self.encode(x, kl_weight)
        out = self.elbo(x, posterior, kl_weight, eps)
        if self.training:
            extra = self.regularizer.extra_loss(self, x, posterior, kl_weight)
            if extra is not None:
                out.loss = out.loss + extra.mean()
        return out

    def elbo(self, x, posterior: Posterior, kl_weight: float = 1.0,
             eps: torch.Tensor | None = None) -> VAEOutput:
        """The loss of `x` under a given posterior: the encoder's (`forward`) or one refined per
        example (SA-VAE, methods/ (standard.py, aggressive.py, savi.py)). eps (B, D) standard normal; drawn when None."""
        mean, logvar = posterior.mean, posterior.logvar
        with float32_region(mean.device):
            if eps is None:
                eps = torch.randn(mean.shape, dtype=mean.dtype, device=mean.device)
            z, log_q = self.draw(posterior, eps)
        rec = -widen(self.decoder.log_prob(x, z))
        with float32_region(mean.device):
            kl = self.kl_per_dim(posterior, z, log_q)  # (B, D)
            kl_term = self.regularizer.kl_term(kl, mean, logvar)
            loss = (rec + kl_weight * kl_term).mean()
        return VAEOutput(loss, rec, kl.sum(-1), kl_term, mean, logvar, z, log_q.sum(-1))

    @torch.no_grad()
    def codes(self, x) -> tuple[torch.Tensor, torch.Tensor]:
        """Deterministic codes (B, D) each: the posterior mean mu0 and the z it stands for, zT = the
        flow applied to z0 = mu0 with the context (mu0 itself without a flow). Eval mode expected."""
        mean, _, context = self.encode(x)
        if self.flow is None:
            return mean, mean
        return mean, self.flow(mean, context, torch.zeros_like(mean))[0]

    def features(self, x) -> torch.Tensor:
        """The representation a probe reads: the posterior mean (B, D); with a flow [mu0 ; zT] (B, 2D)
        (paper §4.2, reference-spec §6)."""
        mean, z = self.codes(x)
        return mean if self.flow is None else torch.cat([mean, z], dim=-1)

    def after_step(self) -> None:
        """Call after every optimizer step."""
        self.regularizer.after_step()
