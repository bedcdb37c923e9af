"""Training strategies: how one batch updates the model (`--strategy`; design.md §1: loop options,
not model classes, so each composes with any regularizer).

- `standard`: one step on the loss of the batch (`step.train_step`).
- `aggressive` (Agg-VAE, He et al. 2019): while aggressive, encoder-only updates on the batch and
  then on random training batches until the windowed loss stops falling (capped), then one
  decoder-only update on the batch (each update's clip norm over all gradients, as He et al.);
  aggressive mode ends for good at the first epoch whose validation MI (He et al.'s per-batch
  estimate by default) is below the previous epoch's.
- `savi` (SA-VAE, Kim et al. 2018): the encoder's (mean, logvar) are refined per batch by K steps
  of SGD on the ELBO; the decoder learns from the refined posterior and the encoder from the gradient
  through the unrolled refinement (exact second order by autograd).

The loop calls `step(batch, kl_weight, state)` per batch and `end_epoch(state, val_mi)` after each
validation. What a strategy remembers lives in `state.strategy_state` (saved in every checkpoint);
its randomness comes from torch's global generator (checkpointed too) or from generators seeded by
(seed, step), so `--resume` stays exact.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from duvae_cli.models.vae import Posterior
from duvae_cli.options import Option, check_declarations
from duvae_cli.train.precision import FP32
from duvae_cli.train.step import clip_gradients, train_step

STRATEGIES: dict[str, type["Standard"]] = {}
SVI_MOMENTUM, SVI_CLIP = 0.5, 5.0  # the reference's refinement optimizer (SA-VAE's OptimN2N)


def register_strategy(name: str):
    def add(cls):
        check_declarations(cls.options, f"strategy {name}")
        cls.name = name
        STRATEGIES[name] = cls
        return cls

    return add


def make_strategy(config, model, optimizer, train_data, runner=None, precision=FP32) -> "Standard":
    """`runner` (the model, or its distributed.DataParallelVAE) and `precision` serve the standard
    step only: the other strategies run in fp32 on one process (config checks reject the rest)."""
    strategy = STRATEGIES[config.strategy](config, model, optimizer, train_data)
    strategy.runner, strategy.precision = runner or model, precision
    return strategy


def decoder_parameters(model) -> list[torch.nn.Parameter]:
    return [p for p in model.decoder.parameters() if p.requires_grad]


def encoder_parameters(model) -> list[torch.nn.Parameter]:
    """Everything that shapes q(z|x): the encoder, the regularizer (BN scales and shifts) and the flow."""
    decoder = {id(p) for p in model.decoder.parameters()}
    return [p for p in model.parameters() if p.requires_grad and id(p) not in decoder]


def update(model, optimizer, loss: torch.Tensor, parameters: list, clip: float,
           clip_over: list | None = None) -> None:
    """One optimizer step of `parameters` only: the others get no gradient, so the optimizer (SGD or
    Adam, which skip parameters without one) leaves them and their state bit-identical.

    The clip's norm is over the gradients of `parameters` and of `clip_over`: Agg-VAE passes every
    parameter, as He et al. clip all gradients (the side not stepped included) before stepping one
    side. The scale then applies to the stepped side's gradients."""
    own = {id(p) for p in parameters}
    others = [p for p in (clip_over or []) if id(p) not in own]
    grads = torch.autograd.grad(loss, [*parameters, *others], allow_unused=True)
    optimizer.zero_grad(set_to_none=True)
    for parameter, grad in zip(parameters, grads):
        parameter.grad = grad
    present = [g for g in grads if g is not None]
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in present]))
    coefficient = clip / (float(norm) + 1e-6)  # as torch.nn.utils.clip_grad_norm_
    if coefficient < 1.0:
        torch._foreach_mul_([p.grad for p in parameters if p.grad is not None], coefficient)
    optimizer.step()
    model.after_step()


@register_strategy("standard")
class Standard:
    """One step on the loss of the batch.

    Subclasses declare their options (always in config.json) and their presets like a regularizer
    (duvae_cli/options.py)."""

    options: tuple[Option, ...] = ()
    presets: dict[str, dict] = {}
    mixed_precision = True  # runs under --precision bf16/fp16 (the others are fp32 only)

    @classmethod
    def check(cls, config) -> str | None:
        """Why this strategy cannot run with `config` (one line), or None."""
        return None

    mi_key = "mi"  # which validation MI `end_epoch` gets (validate.py: "mi" whole-set, "mi_batch")
    mi_batch_size: int | None = None  # batch size of the per-batch MI validate computes (None: none)

    def __init__(self, config, model, optimizer, train_data):
        self.config, self.model, self.optimizer, self.train_data = config, model, optimizer, train_data
        self.runner, self.precision = model, FP32

    def step(self, batch, kl_weight: float, state):
        return train_step(self.runner, self.optimizer, batch, kl_weight, self.config.clip, self.precision)

    def end_epoch(self, state, val_mi: float) -> str | None:
        """Epoch-end bookkeeping after validation; returns a line for the log, if any."""
        return None


@register_strategy("aggressive")
class Aggressive(Standard):
    """He et al.'s aggressive training. `state.strategy_state`: `aggressive` (bool), `mi` (validation
    MI per epoch while aggressive), `inner_updates` (encoder-only updates so far)."""

    options = (
        Option("agg_max_inner", int, 99, "Most encoder updates per batch (He et al.: "
               "sub_iter 1..99).", range=">= 1", flag=False, always=True),
        Option("agg_window", int, 15, "Inner steps per loss window (text 15, images 10).",
               range=">= 1", flag=False, always=True),
        Option("agg_mi", str, "batch", "Validation MI of the stop rule: He et al.'s per-batch estimate "
               "(batch) or the whole-set one (whole).", choices=("batch", "whole"), flag=False, always=True),
    )
    # He et al.'s text runs (reference-spec §4): kl_start 0.1, lr halving after 2 epochs without
    # improvement; images keep their own schedule (and a window of 10).
    presets = {"*": dict(kl_start=0.1, patience=2),
               **{name: dict(agg_window=10, kl_start=0.0, patience=20) for name in ("omniglot", "mnist")}}
    mixed_precision = False

    def __init__(self, config, model, optimizer, train_data):
        super().__init__(config, model, optimizer, train_data)
        self.encoder, self.decoder = encoder_parameters(model), decoder_parameters(model)
        self.everything = self.encoder + self.decoder  # the clip's norm covers both sides (He et al.)
        if config.agg_mi == "batch":  # He et al.'s estimator, over batches of the training batch size
            self.mi_key, self.mi_batch_size = "mi_batch", config.batch_size
        self._plans: dict[int, list] = {}

    def step(self, batch, kl_weight: float, state):
        memo = state.strategy_state
        if not memo.setdefault("aggressive", True):
            return super().step(batch, kl_weight, state)
        memo["inner_updates"] = memo.get("inner_updates", 0) + self._encoder_updates(batch, kl_weight, state)
        out = self.model(batch, kl_weight)
        if torch.isfinite(out.loss):  # non-finite: the loop stops the run
            update(self.model, self.optimizer, out.loss, self.decoder, self.config.clip, self.everything)
        return out

    def _encoder_updates(self, batch, kl_weight: float, state) -> int:
        """Encoder-only steps, the batch first and then random training batches, until the loss per
        word (per image) of a window of `agg_window` steps is above the previous window's, at most
        `agg_max_inner`. Returns the number of updates."""
        rng = np.random.default_rng([self.config.seed, state.step])
        window = self.config.agg_window
        window_loss, window_units, previous = 0.0, 0.0, math.inf
        for inner in range(self.config.agg_max_inner):
            if inner > 0:
                batch = self._random_batch(rng, state.epoch)
            out = self.model(batch, kl_weight)
            if not torch.isfinite(out.loss):
                return inner
            update(self.model, self.optimizer, out.loss, self.encoder, self.config.clip, self.everything)
            window_loss += out.loss.item() * len(batch)
            window_units += _units(batch)
            if (inner + 1) % window == 0:
                if window_loss / window_units > previous:
                    return inner + 1
                previous, window_loss, window_units = window_loss / window_units, 0.0, 0.0
        return self.config.agg_max_inner

    def _random_batch(self, rng: np.random.Generator, epoch: int):
        """A random batch of the epoch's plan (the loop's own batches, rebuilt from (seed, epoch))."""
        if epoch not in self._plans:
            self._plans = {epoch: self.train_data.plan(self.config.batch_size,
                                                       np.random.default_rng([self.config.seed, epoch]))}
        plan = self._plans[epoch]
        device = next(self.model.parameters()).device
        return self.train_data.batch(plan[int(rng.integers(len(plan)))], train=True).to(device)

    def end_epoch(self, state, val_mi: float) -> str | None:
        """Aggressive mode ends for good when the validation MI (per-batch by default, `agg_mi`) falls
        below the previous epoch's (the first epoch compares with 0, as He et al.'s `pre_mi = 0`)."""
        memo = state.strategy_state
        if not memo.setdefault("aggressive", True):
            return None
        history = memo.setdefault("mi", [])
        previous = history[-1] if history else 0.0
        history.append(val_mi)
        if val_mi >= previous:
            return None
        memo["aggressive"] = False
        estimator = "per-batch" if self.mi_key == "mi_batch" else "whole-set"
        return (f"aggressive training ends after epoch {state.epoch + 1}: validation MI {val_mi:.4f} < "
                f"{previous:.4f} ({estimator}); standard updates from now on")


def _units(batch) -> float:
    """What the window loss is averaged over: predicted words (text) or examples (images)."""
    counts = getattr(batch, "n_predicted", None)
    return float(len(batch) if counts is None else counts.sum())


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
    mixed_precision = False

    @classmethod
    def check(cls, config) -> str | None:
        if config.flow != "none":
            return (f"--strategy savi refines a Gaussian posterior; it does not support --model {config.model} "
                    "with an IAF posterior")
        return None

    def __init__(self, config, model, optimizer, train_data):
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
