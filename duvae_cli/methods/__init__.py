"""The methods: every regularizer, flow, named flow model and training strategy, one file each in
this package, found and registered when the package is imported (registry.py; docs/extending.md).

    from duvae_cli.methods import REGULARIZERS, build_regularizer
    du = build_regularizer("du", latent_dim=32, gamma=0.5, p=0.8)
"""

from duvae_cli.methods.registry import (
    FLOW_MODELS, FLOWS, NO_FLOW, REGULARIZERS, STRATEGIES, Capabilities, Method, Preset, bf16_parity,
    build_flow, build_regularizer, build_strategy, data_problem, discover, registered, single_process_parts,
)

discover()

__all__ = ["FLOW_MODELS", "FLOWS", "NO_FLOW", "REGULARIZERS", "STRATEGIES", "Capabilities", "Method", "Preset",
           "bf16_parity", "build_flow", "build_regularizer", "build_strategy", "data_problem", "discover",
           "registered", "single_process_parts"]
