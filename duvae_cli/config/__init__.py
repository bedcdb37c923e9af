"""Training configuration: the declared options of every method and the general ones
(`declared()`), the frozen `TrainConfig` they make, its resolution from presets, files and flags
(`resolve_config`), and what a config builds (`build_model`, `decide_runtime`).

    config = resolve_config("short-yelp", "du", {"gamma": 0.5, "p": 0.8})
    model = build_model(config, dataset)
"""

from duvae_cli.config.build import build_model, decide_runtime
from duvae_cli.config.declared import declared
from duvae_cli.config.resolve import TrainConfig, resolve_config

__all__ = ["TrainConfig", "build_model", "declared", "decide_runtime", "resolve_config"]
