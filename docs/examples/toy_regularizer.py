"""Toy: the KL term weighted by (1 + toy_option), the example of docs/extending.md.

A whole method in one file: its options (name, type, default, help, range), its presets per dataset
(each naming its source) and its capabilities are declared next to its code. Saved in
duvae_cli/methods/ it is found by itself; elsewhere, name its module in DUVAE_METHODS. Then
`duvae train --model toy --toy-option 0.3` works, with the option validated, listed in `--help`,
saved in config.json, shown by `duvae report`, and `duvae_cli.build_regularizer("toy", 32)` builds it.
"""

from __future__ import annotations

from duvae_cli.methods.registry import Capabilities, Preset, register
from duvae_cli.models.regularizer import Regularizer
from duvae_cli.options import Option


@register("toy")
class Toy(Regularizer):
    """Toy: the KL term weighted by (1 + toy_option)."""

    options = (Option("toy_option", float, 0.5, "Extra weight of the KL term.", range="[0, 1]"),)
    presets = {"synthetic": Preset("an example value, ours", toy_option=0.25)}  # when --model toy is chosen
    # `--precision auto` trains a method in bf16 only where its parity with fp32 was measured; name the
    # measurement per data kind, e.g. Capabilities(bf16={"text": "precision_parity.py synthetic
    # --models toy, 3 seeds: within seed noise"}). Not measured here, so fp32.
    capabilities = Capabilities()

    def __init__(self, latent_dim: int, toy_option: float = 0.5):  # defaults must equal the declared ones
        super().__init__()
        self.toy_option = toy_option

    def kl_term(self, kl, mean, logvar):
        return (1.0 + self.toy_option) * kl.sum(-1)  # (B, D) -> (B,)
