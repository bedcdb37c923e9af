"""docs/options.md, generated from the declarations and checked current by a test:

    python -m duvae_cli.commands.options_doc > docs/options.md

The training options (config/options_doc.py), then every command's own options, read from the
Options each command is built from (`command` keeps them on the function), so the page lists
exactly the flags `--help` shows, with the limits the commands check.
"""

from __future__ import annotations

from duvae_cli.commands import COMMANDS, load
from duvae_cli.commands.common import config_options
from duvae_cli.config.options_doc import training_markdown
from duvae_cli.options import Option

_INTRO = [
    "", "# Options of the commands (generated)", "",
    "Each command's options are declared next to the code that reads them (`EVAL_OPTIONS` in",
    "duvae_cli/metrics/evaluate.py, `PREPARE_OPTIONS` in duvae_cli/prepare/options.py, ...); its flags, their",
    "checks and the options record the library takes (`EvalOptions`, `PrepareOptions`, ...) are derived from",
    "them. A value outside its limits is one line naming the flag, exit 2, before anything is read or written;",
    "building the record from Python checks the same limits.",
]


def options_markdown() -> str:
    lines = [training_markdown().rstrip("\n"), *_INTRO]
    config = {o.name: o.help for o in config_options()}  # the train flags: help derived from the declaration
    for name, entry in COMMANDS.items():
        if entry.hidden:
            continue
        options = load(name).options
        own = [o for o in options if config.get(o.name) != o.help]
        lines += ["", f"## `duvae {name}`", ""]
        if len(own) < len(options):
            lines += ["Every config flag of `duvae train` (the tables above), and:", ""]
        lines += ["| flag | type | allowed | default | help |", "|---|---|---|---|---|"]
        lines += [_row(o) for o in own]
    return "\n".join(lines) + "\n"


def _row(option: Option) -> str:
    flags = ", ".join(f"`{f}`" for spelling in (option.flags or (option.flag_name,)) for f in spelling.split("/"))
    kind = " ".join([option.type.__name__.lower()] * option.nargs) + (", repeatable" if option.multiple else "")
    default = option.default
    if isinstance(default, tuple):
        default = ", ".join(map(str, default))
    shown = "—" if default in (None, "", False) else f"`{default}`"
    return f"| {flags} | {kind} | {option.constraint() or '—'} | {shown} | {option.help.replace('|', '/')} |"


if __name__ == "__main__":
    print(options_markdown(), end="")
