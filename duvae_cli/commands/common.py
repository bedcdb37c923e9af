"""What every command is made of: `command`, which turns declared Options (duvae_cli/options.py) into
Typer parameters and checks each given value against its declaration before the body runs; the
options several commands share; and small shared helpers.

A command module is its positional arguments, the option groups it uses and a short body:

    @command(EVAL_OPTIONS, (SPLIT, CHECKPOINT, DEVICE), (QUIET, JSON))
    def evaluate(run: RunArg = LATEST, **values) -> None:
        # docstring: the one line of `duvae --help`, more, then "Example: duvae evaluate runs/latest"
        report = evaluate_run(run, values["split"], ..., EvalOptions.from_flags(values), ...)
"""

from __future__ import annotations

import inspect
import typing
from pathlib import Path
from typing import Annotated, Optional

import typer

from duvae_cli.options import Option, checked

LATEST = Path("runs/latest")
RunArg = Annotated[Path, typer.Argument(help="Run directory (default: runs/latest).")]

QUIET = Option("quiet", bool, False, "No progress or log lines on stderr (notes on what a result is of "
               "still show).", flags=("--quiet", "-q"))
JSON = Option("json", bool, False, "Print the result as JSON on stdout.", flags=("--json",))
RESULTS_OUT = Option("out", Path, None, "Write the results (and the evaluation's lock and partial results) "
                     "into this folder instead of the run directory, e.g. for a run on a read-only file "
                     "system.", metavar="DIR")

_KEYWORD = inspect.Parameter.KEYWORD_ONLY
_AGREE = ("type", "default", "range", "choices", "multiple", "nargs", "flags")


def command(*groups: tuple[Option, ...]):
    """Decorator: the command's flags are the Options of `groups` that have one (`flag=True`), in
    order; a name in two groups is one flag (the first declaration's help; the others must agree
    on type, default and limits). The function's own parameters are its positional arguments; it
    gets every option in `**values` (None: an optional one not given), each given value checked and
    converted first (`options.checked`: a UsageError naming the flag). `fn.options` keeps them."""
    options = merged(groups)

    def make(function):
        hints = typing.get_type_hints(function, include_extras=True)
        own = [p.replace(annotation=hints.get(p.name, p.annotation))
               for p in inspect.signature(function).parameters.values() if p.kind is not p.VAR_KEYWORD]
        clash = {p.name for p in own} & {o.name for o in options}
        if clash:
            raise ValueError(f"{function.__name__}: {clash.pop()} is an argument and an option")

        def run(**values):
            for option in options:
                if values.get(option.name) is not None:
                    values[option.name] = checked(option, values[option.name])
            return function(**values)

        run.__signature__ = inspect.Signature([*own, *map(parameter, options)])
        run.__name__, run.__qualname__ = function.__name__, function.__qualname__
        run.__doc__, run.__module__ = function.__doc__, function.__module__
        run.options = options
        return run

    return make


def merged(groups) -> tuple[Option, ...]:
    """The flag options of `groups`, each name once."""
    seen: dict[str, Option] = {}
    for option in (o for group in groups for o in group if o.flag):
        first = seen.setdefault(option.name, option)
        differ = [k for k in _AGREE if getattr(first, k) != getattr(option, k)]
        if differ:
            raise ValueError(f"option {option.name} is declared twice with different {differ[0]}")
    return tuple(seen.values())


def parameter(option: Option) -> inspect.Parameter:
    """A keyword-only Typer parameter: the declared spelling, help, metavar and panel; a repeatable
    option or one of several values defaults to None (not given), as does an optional one."""
    value_type = str if option.convert is not None else option.type
    if option.multiple:
        annotation, default = Optional[list[value_type]], None
    elif option.nargs > 1:
        annotation, default = Optional[tuple[(value_type,) * option.nargs]], None
    else:
        annotation, default = (value_type if option.default is not None else Optional[value_type]), option.default
    info = typer.Option(*(option.flags or (option.flag_name,)), help=option.help, metavar=option.metavar,
                        rich_help_panel=option.panel)
    return inspect.Parameter(option.name, _KEYWORD, default=default, annotation=Annotated[annotation, info])


def config_options() -> tuple[Option, ...]:
    """The config flags of `duvae train` (and of `duvae sweep`, the same): every declared config field
    with a flag, unset by default (the resolved config fills it), its help line derived from the
    declaration (methods, limits, default) and listed in its method's panel."""
    from duvae_cli.config.declared import declared, help_text

    table = declared()
    kinds = {o: next(m.kind for m in table.methods if m.name in owners) for o, owners in table.variants.items()}
    return tuple(option.but(default=None, help=help_text(option, table), panel=_PANELS.get(kinds.get(name)))
                 for name, option in table.options.items() if option.flag)


_PANELS = {"model": "Model options (--model)", "flow": "Flow options (--flow)",
           "strategy": "Strategy options (--strategy)"}


def join_torchrun():
    """This process's place under torchrun: a world of one outside it; only rank 0 prints."""
    from duvae_cli.runtime.distributed import join

    return join()
