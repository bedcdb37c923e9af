"""The declarations' facts a table needs, without importing torch (so `duvae report` starts fast):
every config field's default and each model's own options, read from declared.json, which is
generated from the declarations (`python -m duvae_cli.config.options_doc --facts`) and checked
current by a test. A model the file does not know (a DUVAE_METHODS plugin) is read from the live
declarations instead, which imports the methods."""

from __future__ import annotations

import functools
import json
from importlib import resources


@functools.cache
def _shipped() -> dict:
    return json.loads(resources.files("duvae_cli.tables").joinpath("declared.json").read_text(encoding="utf-8"))


@functools.cache
def _live() -> dict:
    from duvae_cli.config.options_doc import facts

    return facts()


def _facts(model: str | None) -> dict:
    shipped = _shipped()
    return shipped if model is None or model in shipped["model_options"] else _live()


def with_defaults(config: dict) -> dict:
    """A saved config completed with today's defaults: a run made before a field existed ran as its
    default (new fields default to the old behaviour), so it groups with the newer runs."""
    return {**_facts(config.get("model"))["defaults"], **config}


def model_options(model: str) -> list[str]:
    """The options `model` itself sets (gamma and p for du; beta for beta; ...), shown in a table's
    settings whenever set."""
    return _facts(model)["model_options"].get(model, [])
