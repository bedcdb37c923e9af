"""Generated from the declared training options, and checked current by tests: the training part of
docs/options.md (`training_markdown`; the whole page, with every command's options, is made by
`python -m duvae_cli.commands.options_doc > docs/options.md`) and the declarations' facts that the
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


def training_markdown(table: Declared | None = None) -> str:
    """The tables of the training options: general fields, methods, method options."""
    table = table or declared()
    lines = ["# Training options (generated)", "",
             "Generated from the declarations (`duvae_cli/options.py`, docs/extending.md) by",
             "`python -m duvae_cli.commands.options_doc > docs/options.md`; do not edit by hand.",
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
                                + (f" ({values.source})" if getattr(values, "source", "") else "")
                                for scope, values in method.presets.items()) or "—"
            lines.append(f"| `{method.name}` | {method.help} | {options} | {presets} |")
    lines += ["", "## Method options", "", "| field | flag | type | allowed | default | help |",
              "|---|---|---|---|---|---|"]
    lines += [_row(table, o) for name, o in table.options.items() if name in table.variants]
    return "\n".join(lines) + "\n"


def _row(table: Declared, option) -> str:
    flag = f"`{option.flag_name}`" if option.flag else "—"
    default = "null unless chosen" if table.nullable(option.name) else f"`{option.default}`"
    allowed = option.constraint() or "—"
    return (f"| `{option.name}` | {flag} | {option.type.__name__} | {allowed} | {default} | "
            f"{help_text(option, table).replace('|', '/')} |")


if __name__ == "__main__":
    if "--facts" not in sys.argv[1:]:
        sys.exit("usage: python -m duvae_cli.config.options_doc --facts > duvae_cli/tables/declared.json "
                 "(docs/options.md: python -m duvae_cli.commands.options_doc > docs/options.md)")
    print(json.dumps(facts(), indent=1, sort_keys=True), end="")
