"""The standard training strategy: one optimizer step on the loss of each batch (`--strategy standard`).

A strategy says how one batch updates the model (design.md §1: loop options, not model classes, so
each composes with any regularizer). The loop calls `step(batch, kl_weight, state)` per batch and
`end_epoch(state, val_mi)` after each validation; what a strategy remembers lives in
`state.strategy_state` (saved in every checkpoint), and its randomness comes from torch's global
generator (checkpointed too) or from generators seeded by (seed, step), so `--resume` stays exact.
The others: Agg-VAE (aggressive.py), SA-VAE (savi.py).
"""

from __future__ import annotations

from duvae_cli.methods.registry import DATA_KINDS, Capabilities, register_strategy
from duvae_cli.optim import train_step
from duvae_cli.options import Option
from duvae_cli.runtime.precision import FP32, Precision


@register_strategy("standard")
class Standard:
    """One step on the loss of the batch.

    Subclasses declare their options (always in config.json) and their presets like a regularizer
    (duvae_cli/options.py)."""

    options: tuple[Option, ...] = ()
    presets: dict[str, dict] = {}
    capabilities = Capabilities(bf16={kind: "the standard step adds nothing to the model's computation: "
                                      "its parity is the model's" for kind in DATA_KINDS})

    @classmethod
    def check(cls, config) -> str | None:
        """Why this strategy cannot run with `config` (one line), or None."""
        return None

    mi_key = "mi"  # which validation MI `end_epoch` gets (validate.py: "mi" whole-set, "mi_batch")
    mi_batch_size: int | None = None  # batch size of the per-batch MI validate computes (None: none)

    def __init__(self, config, model, optimizer, train_data, runner=None, precision: Precision = FP32):
        """`runner` (the model, or its train.parallel.DataParallelVAE) and `precision` serve this
        standard step only: the other strategies run in fp32 on one process (their capabilities)."""
        self.config, self.model, self.optimizer, self.train_data = config, model, optimizer, train_data
        self.runner, self.precision = runner or model, precision

    def step(self, batch, kl_weight: float, state):
        return train_step(self.runner, self.optimizer, batch, kl_weight, self.config.clip, self.precision)

    def end_epoch(self, state, val_mi: float) -> str | None:
        """Epoch-end bookkeeping after validation; returns a line for the log, if any."""
        return None
