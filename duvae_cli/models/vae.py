"""The one VAE: `VAE(encoder, decoder, regularizer, flow=None)`. The ELBO is assembled here only.

Per example: loss = rec + kl_weight * kl_term, with rec = -log p(x|z) for one z ~ q(z|x) and
kl_term = the regularizer's view of KL(q(z|x) || N(0, I)); the training loss is the batch mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from duvae_cli.models.gaussian import kl_standard_normal, sample
from duvae_cli.models.regularizers import Regularizer


@dataclass
class VAEOutput:
    loss: torch.Tensor  # () batch mean of rec + kl_weight * kl_term
    rec: torch.Tensor  # (B,) -log p(x|z), nats
    kl: torch.Tensor  # (B,) KL(q(z|x) || p(z)), nats
    kl_term: torch.Tensor  # (B,) the KL as the regularizer puts it in the loss
    mean: torch.Tensor  # (B, D) posterior mean after the regularizer
    logvar: torch.Tensor  # (B, D) posterior log-variance after the regularizer


class VAE(nn.Module):
    def __init__(self, encoder: nn.Module, decoder: nn.Module, regularizer: Regularizer,
                 flow: nn.Module | None = None):
        super().__init__()
        if flow is not None:
            raise NotImplementedError("IAF posteriors arrive with issue #7")
        self.encoder, self.decoder, self.regularizer = encoder, decoder, regularizer

    def posterior(self, x, kl_weight: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x) as (mean, logvar), (B, D) each, after the regularizer's reshaping."""
        mean, logvar = self.encoder(x)
        return self.regularizer.posterior(mean, logvar, kl_weight)

    def forward(self, x, kl_weight: float = 1.0) -> VAEOutput:
        mean, logvar = self.posterior(x, kl_weight)
        rec = -self.decoder.log_prob(x, sample(mean, logvar))
        kl = kl_standard_normal(mean, logvar)  # (B, D)
        kl_term = self.regularizer.kl_term(kl, mean, logvar)
        loss = (rec + kl_weight * kl_term).mean()
        return VAEOutput(loss, rec, kl.sum(-1), kl_term, mean, logvar)

    def after_step(self) -> None:
        """Call after every optimizer step."""
        self.regularizer.after_step()
