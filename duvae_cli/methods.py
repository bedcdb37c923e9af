"""The registry of methods: regularizers, flows, named flow models and training strategies.

Adding a method is one new file plus one line in `METHOD_MODULES` (docs/extending.md). Importing a
module registers what it declares (`@register("name")` for a regularizer, `@register_strategy` for
a strategy). Modules outside the package are loaded from the `DUVAE_METHODS` environment variable
(comma-separated module names, importable from `sys.path`), so a method can also live in your own
project.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass

from duvae_cli.errors import UsageError
from duvae_cli.options import Option

METHOD_MODULES: tuple[str, ...] = (
    "duvae_cli.models.regularizers",  # vae, beta, fb, delta, bn
    "duvae_cli.models.du",  # du
    "duvae_cli.models.mae",  # mae
    "duvae_cli.models.flow",  # the flow iaf; the models iaf-fb, iaf-bn, du-iaf
    "duvae_cli.train.strategies",  # standard, aggressive, savi
)
PLUGINS_ENV = "DUVAE_METHODS"


@dataclass(frozen=True)
class Method:
    """One registered method as the config sees it. kind: "model" (a regularizer or a named flow
    model; `--model`), "flow" (`--flow`) or "strategy" (`--strategy`)."""

    kind: str
    name: str
    options: tuple[Option, ...]
    presets: dict
    help: str
    base: str = ""  # a named flow model: the regularizer it puts under the flow


def load_methods() -> None:
    """Import every method module (idempotent), the built-in ones and those named in DUVAE_METHODS."""
    plugins = [m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(",") if m.strip()]
    for module in (*METHOD_MODULES, *plugins):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            if module in plugins:
                raise UsageError(f"{PLUGINS_ENV}: cannot import {module!r} ({exc})") from None
            raise


def registered() -> list[Method]:
    """Every method, in registration order: models, then flows, then strategies."""
    from duvae_cli.models.flow import FLOW_MODELS, FLOWS
    from duvae_cli.models.regularizers import REGULARIZERS
    from duvae_cli.train.strategies import STRATEGIES

    load_methods()
    found = [Method("model", name, cls.options, cls.presets, _first_line(cls)) for name, cls in REGULARIZERS.items()]
    found += [Method("model", name, (), alias.presets, alias.help, alias.regularizer) for name, alias in FLOW_MODELS.items()]
    found += [Method("flow", name, cls.options, cls.presets, _first_line(cls)) for name, cls in FLOWS.items()]
    found += [Method("strategy", name, cls.options, cls.presets, _first_line(cls)) for name, cls in STRATEGIES.items()]
    return found


def _first_line(cls) -> str:
    return " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())
