"""Every declared option in one table: the general fields (config/general.py) and those of every
registered method (duvae_cli/methods/registry.py), merged by name. `TrainConfig`, the flags of `duvae train`,
validation, `--help` and docs/options.md are built from this table.

Two methods may declare the same option (bn and du both take `gamma`): it is one config field, so
the declarations must agree on type, range, choices, flag and `always`; their defaults may differ
(the chosen method's default is the one filled in).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from duvae_cli.methods.registry import Method, registered
from duvae_cli.options import Option
from duvae_cli.config.general import GENERAL


@dataclass(frozen=True)
class Declared:
    options: dict[str, Option]  # every config field, general ones first
    variants: dict[str, dict[str, Option]]  # method option -> {method name: its declaration}
    methods: tuple[Method, ...]

    def nullable(self, name: str) -> bool:
        """A method-only option: null in config.json unless one of its methods is chosen."""
        return name in self.variants and not self.options[name].always

    def names(self, kind: str) -> list[str]:
        return [m.name for m in self.methods if m.kind == kind]

    def method(self, kind: str, name: str) -> Method | None:
        return next((m for m in self.methods if m.kind == kind and m.name == name), None)


@functools.cache
def declared() -> Declared:
    options = {o.name: o for o in GENERAL}
    variants: dict[str, dict[str, Option]] = {}
    methods = tuple(registered())
    for method in methods:
        for option in method.options:
            if option.name in variants:
                _check_agree(next(iter(variants[option.name].values())), option, method.name)
            elif option.name in options:
                raise ValueError(f"{method.kind} {method.name}: option {option.name} is a general field")
            else:
                options[option.name] = option
            variants.setdefault(option.name, {})[method.name] = option
    return Declared(options, variants, methods)


def _check_agree(first: Option, other: Option, owner: str) -> None:
    keys = ("type", "range", "choices", "flag", "always") + (("default",) if first.always else ())
    for key in keys:
        if getattr(first, key) != getattr(other, key):
            raise ValueError(f"{owner}: option {other.name} declares {key} {getattr(other, key)!r}, but "
                             f"another method declares {getattr(first, key)!r}")


def help_text(option: Option, table: Declared | None = None) -> str:
    """The help line of an option: '[methods: ]help [constraint; default]'."""
    table = table or declared()
    text = option.help.format(models=", ".join(table.names("model")), flows=", ".join(table.names("flow")),
                              strategies=", ".join(table.names("strategy")),
                              flow_models=", ".join(m.name for m in table.methods if m.base))
    owners = table.variants.get(option.name, {})
    prefix = f"{'/'.join(owners)}: " if owners else ""
    constraint = "" if option.choices else option.constraint()  # choices: the help text names them
    return f"{prefix}{text} ({'; '.join(filter(None, (constraint, _default(option, owners))))})"


def _default(option: Option, owners: dict[str, Option]) -> str:
    defaults = {name: o.default for name, o in owners.items()}
    if len(set(map(repr, defaults.values()))) > 1:
        return "default " + ", ".join(f"{v} ({k})" for k, v in defaults.items())
    return f"default {option.default}"
