"""Toy: the KL term weighted by (1 + toy_option), the example of docs/extending.md.

A whole method: its options (name, type, default, help, range) and its presets per dataset are
declared next to its code; `duvae train --model toy --toy-option 0.3` then works, with the option
validated, listed in `--help` and saved in config.json.
"""

from __future__ import annotations

from duvae_cli.models.regularizers import Regularizer, register
from duvae_cli.options import Option


@register("toy")
class Toy(Regularizer):
    """Toy: the KL term weighted by (1 + toy_option)."""

    options = (Option("toy_option", float, 0.5, "Extra weight of the KL term.", range="[0, 1]"),)
    presets = {"synthetic": dict(toy_option=0.25)}  # dataset -> values when --model toy is chosen

    def __init__(self, latent_dim: int, toy_option: float = 0.5):
        super().__init__()
        self.toy_option = toy_option

    def kl_term(self, kl, mean, logvar):
        return (1.0 + self.toy_option) * kl.sum(-1)  # (B, D) -> (B,)
