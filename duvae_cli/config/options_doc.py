"""Generated from the declared options, and checked current by tests: docs/options.md
(`python -m duvae_cli.config.options_doc > docs/options.md`) and the declarations' facts that the
commands which must not import torch read (`python -m duvae_cli.config.options_doc --facts >
duvae_cli/tables/declared.json`: every field's default, each model's own options)."""

from __future__ import annotations

import json
import sys

from duvae_cli.config.declared import Declared, declared, help_text


def facts(table: Declared | None = None) -> dict:
    """{"defaults": field -> default (None: a method option, null unless chosen), "model_options":
    model -> the options that model sets (a named flow model: its regularizer's)}."""
    table = table or declared()
    defaults = {name: None if table.nullable(name) else option.default for name, option in table.options.items()}
    models = {m.name: m for m in table.methods if m.kind == "model"}
    own = {name: [o.name for o in models[m.base or name].options if not o.always] for name, m in models.items()}
    return {"defaults": defaults, "model_options": own}


def options_markdown(table: Declared | None = None) -> str:
    table = table or declared()
    lines = ["# Training options (generated)", "",
             "Generated from the declarations (`duvae_cli/options.py`, docs/extending.md) by",
             "`python -m duvae_cli.config.options_doc > docs/options.md`; do not edit by hand.",
             "Fields with a flag are `duvae train --flag`; all are `--set key=value` and `--config` keys.", "",
             "## General", "", "| field | flag | type | allowed | default | help |", "|---|---|---|---|---|---|"]
    lines += [_row(table, o) for name, o in table.options.items() if name not in table.variants]
    for kind, title in (("model", "Models (`--model`)"), ("flow", "Flows (`--flow`)"),
                        ("strategy", "Strategies (`--strategy`)")):
        lines += ["", f"## {title}", "", "| name | what it is | options | presets |", "|---|---|---|---|"]
        for method in (m for m in table.methods if m.kind == kind):
            options = ", ".join(f"`{o.name}` {o.default}" for o in method.options) or "—"
            if method.base:
                options = f"those of `{method.base}`, under `--flow iaf`"
            presets = "; ".join(f"{scope}: " + ", ".join(f"{k} {v}" for k, v in values.items())
                                for scope, values in method.presets.items()) or "—"
            lines.append(f"| `{method.name}` | {method.help} | {options} | {presets} |")
    lines += ["", "## Method options", "", "| field | flag | type | allowed | default | help |",
              "|---|---|---|---|---|---|"]
    lines += [_row(table, o) for name, o in table.options.items() if name in table.variants]
    return "\n".join(lines + _command_limits()) + "\n"


def _command_limits() -> list[str]:
    """The other commands' limits (options.COMMAND_OPTIONS), checked where each command validates."""
    from duvae_cli.options import COMMAND_OPTIONS

    return ["", "## Limits of the other commands' options", "",
            "Declared once in `duvae_cli/options.py` (`COMMAND_OPTIONS`) and checked by `evaluate`, `classify`,",
            "`generate`, `visualize`, `prepare` and `train --log-every` wherever the option exists; a value",
            "outside is one line naming the option, exit 2.", "",
            "| option | type | allowed | what |", "|---|---|---|---|",
            *(f"| `{o.flag_name}` | {o.type.__name__} | {o.constraint()} | {o.help} |"
              for o in COMMAND_OPTIONS.values())]


def _row(table: Declared, option) -> str:
    flag = f"`{option.flag_name}`" if option.flag else "—"
    default = "null unless chosen" if table.nullable(option.name) else f"`{option.default}`"
    allowed = option.constraint() or "—"
    return (f"| `{option.name}` | {flag} | {option.type.__name__} | {allowed} | {default} | "
            f"{help_text(option, table).replace('|', '/')} |")


if __name__ == "__main__":
    print(json.dumps(facts(), indent=1, sort_keys=True) if "--facts" in sys.argv[1:] else options_markdown(), end="")
