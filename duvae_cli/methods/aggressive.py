"""Agg-VAE (He et al. 2019), `--strategy aggressive`: while aggressive, encoder-only updates on the
batch and then on random training batches until the windowed loss stops falling (capped), then one
decoder-only update on the batch (each update's clip norm over all gradients, as He et al.);
aggressive mode ends for good at the first epoch whose validation MI (He et al.'s per-batch estimate
by default) is below the previous epoch's.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from duvae_cli.methods.registry import Capabilities, Preset, register_strategy
from duvae_cli.methods.standard import Standard
from duvae_cli.optim import update
from duvae_cli.options import Option


def decoder_parameters(model) -> list[torch.nn.Parameter]:
    return [p for p in model.decoder.parameters() if p.requires_grad]


def encoder_parameters(model) -> list[torch.nn.Parameter]:
    """Everything that shapes q(z|x): the encoder, the regularizer (BN scales and shifts) and the flow."""
    decoder = {id(p) for p in model.decoder.parameters()}
    return [p for p in model.parameters() if p.requires_grad and id(p) not in decoder]


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
        Option("agg_stop", str, "previous", "When aggressive training ends: at the first epoch whose "
               "validation MI is below the previous epoch's (previous: He et al.'s text.py) or once it has "
               "been below the best so far 5 times (best5: their image.py).", choices=("previous", "best5"),
               flag=False, always=True),
    )
    presets = {"*": Preset("He et al.'s text runs: kl_start 0.1, lr halving after 2 epochs without "
                           "improvement (reference-spec §4)", kl_start=0.1, patience=2),
               **{name: Preset("He et al.'s image.py and README (`--kl_start 0.1 --warm_up 10`): a window "
                               "of 10, the image stop rule, the image lr schedule (patience 20)",
                               agg_window=10, agg_stop="best5", kl_start=0.1, warm_up=10.0, patience=20)
                  for name in ("omniglot", "mnist")}}
    capabilities = Capabilities(multi_process=False, mixed_precision=False)

    def __init__(self, config, model, optimizer, train_data, runner=None, precision=None):
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
        below the previous epoch's (`agg_stop` previous; the first epoch compares with 0, as He et
        al.'s `pre_mi = 0`), or when it has been below the best so far 5 times (best5: their image.py,
        whose count never resets; the best starts at 0 too)."""
        memo = state.strategy_state
        if not memo.setdefault("aggressive", True):
            return None
        history = memo.setdefault("mi", [])
        reference = (history[-1] if history else 0.0) if self.config.agg_stop == "previous" \
            else max([0.0, *history])
        history.append(val_mi)
        if val_mi >= reference:
            return None
        memo["below"] = memo.get("below", 0) + 1
        if self.config.agg_stop == "best5" and memo["below"] < 5:
            return None
        memo["aggressive"] = False
        estimator = "per-batch" if self.mi_key == "mi_batch" else "whole-set"
        rule = "" if self.config.agg_stop == "previous" else ", the 5th time below the best"
        return (f"aggressive training ends after epoch {state.epoch + 1}: validation MI {val_mi:.4f} < "
                f"{reference:.4f} ({estimator}{rule}); standard updates from now on")


def _units(batch) -> float:
    """What the window loss is averaged over: predicted words (text) or examples (images)."""
    counts = getattr(batch, "n_predicted", None)
    return float(len(batch) if counts is None else counts.sum())
