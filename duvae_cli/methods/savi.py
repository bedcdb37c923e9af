"""SA-VAE (Kim et al. 2018), `--strategy savi`: the encoder's (mean, logvar) are refined per batch by
K steps of SGD on the ELBO; the decoder learns from the refined posterior and the encoder from the
gradient through the unrolled refinement (exact second order by autograd). Its runs are evaluated
with the amortised posterior (no refinement; docs/metrics.md), and their estimator labels say so.
"""

from __future__ import annotations

import torch

from duvae_cli.methods.registry import Capabilities, Preset, register_strategy
from duvae_cli.methods.standard import Standard
from duvae_cli.models.vae import Posterior
from duvae_cli.optim import update
from duvae_cli.options import Option

SVI_MOMENTUM, SVI_CLIP = 0.5, 5.0  # the reference's refinement optimizer (SA-VAE's OptimN2N)


@register_strategy("savi")
class SemiAmortized(Standard):
    """SA-VAE: refine, then one step of every parameter on the refined posterior's loss, whose
    gradient reaches the encoder through the K unrolled refinement steps."""

    options = (
        Option("svi_steps", int, 10, "Refinement steps per batch (He et al.'s setting; Kim et al. use 20).",
               range=">= 1", always=True),
        Option("svi_lr", float, 1.0, "Refinement learning rate (SGD, momentum 0.5).", range="> 0",
               always=True),
    )
    presets = {"*": Preset("He et al.'s text_sa.py: the KL weight 1 from the start (kl_start 1.0), the lr "
                           "halved after 2 epochs without improvement (decay_epoch 2), no epoch-15 gate",
                           kl_start=1.0, patience=2, decay_from_epoch=0),
               **{name: Preset("images keep the image schedule (He et al. ran SA-VAE on text only)",
                               kl_start=0.0, patience=20) for name in ("omniglot", "mnist")}}
    capabilities = Capabilities(multi_process=False, mixed_precision=False, evaluation_note="-amortised")

    @classmethod
    def check(cls, config) -> str | None:
        if config.flow != "none":
            return (f"--strategy savi refines a Gaussian posterior; it does not support --model {config.model} "
                    "with an IAF posterior")
        return None

    def __init__(self, config, model, optimizer, train_data, runner=None, precision=None):
        super().__init__(config, model, optimizer, train_data)
        self.parameters = [p for p in model.parameters() if p.requires_grad]

    def step(self, batch, kl_weight: float, state):
        posterior = self.model.encode(batch, kl_weight)
        refined = refine(self.model, batch, posterior, kl_weight, self.config.svi_steps, self.config.svi_lr,
                         create_graph=True)
        out = self.model.elbo(batch, refined, kl_weight)
        if torch.isfinite(out.loss):
            update(self.model, self.optimizer, out.loss, self.parameters, self.config.clip)
        return out


def refine(model, batch, posterior: Posterior, kl_weight: float, steps: int, lr: float,
           create_graph: bool = False) -> Posterior:
    """SA-VAE's refinement of a Gaussian posterior: `steps` of SGD with momentum 0.5 on (mean,
    logvar), (B, D) each, from the given ones, on the batch-mean loss (`VAE.elbo`, one fresh z per
    step), the gradients of mean and of logvar each clipped to norm 5 over the batch. With
    `create_graph` the result is a differentiable function of the input posterior and of the decoder
    (training); else it is detached (evaluation, tests)."""
    mean, logvar = posterior.mean, posterior.logvar
    velocity = (torch.zeros_like(mean), torch.zeros_like(logvar))
    with torch.enable_grad():
        for _ in range(steps):
            if not create_graph:
                mean, logvar = mean.detach().requires_grad_(), logvar.detach().requires_grad_()
            loss = model.elbo(batch, Posterior(mean, logvar, None), kl_weight).loss
            grads = torch.autograd.grad(loss, (mean, logvar), create_graph=create_graph)
            grads = tuple(_clip_norm(g, SVI_CLIP) for g in grads)  # each on its own, as He et al.'s OptimN2N
            velocity = tuple(SVI_MOMENTUM * v + g for v, g in zip(velocity, grads))
            mean, logvar = mean - lr * velocity[0], logvar - lr * velocity[1]
    if not create_graph:
        mean, logvar = mean.detach(), logvar.detach()
    return Posterior(mean, logvar, None)


def _clip_norm(grad: torch.Tensor, max_norm: float) -> torch.Tensor:
    """Scale one gradient so that its norm (over the whole batch) is at most `max_norm`, differentiably."""
    norm = torch.linalg.vector_norm(grad)  # gradient 0 at norm 0
    return grad * torch.clamp(max_norm / (norm + 1e-6), max=1.0)
