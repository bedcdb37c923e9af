"""The `duvae` command: a thin Typer shell over the library.

The commands live in `duvae_cli/commands/` (one module per group); each translates flags into
library calls and prints the result. They are loaded on demand (`LazyGroup`): `duvae --help` lists
them from the table `commands.COMMANDS`, and a command's module (and torch, where it needs it) is
imported only when that command runs or prints its own help, so `duvae --help` and `duvae report`
start without torch. Errors are turned into one line and an exit code in exactly one place,
`main()`: 0 success, 1 failure, 2 usage error. `DUVAE_DEBUG=1` shows the traceback instead.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Optional

import typer
from typer.core import TyperCommand, TyperGroup
from typer.exceptions import TyperException

from duvae_cli import __version__
from duvae_cli.commands import COMMANDS, load
from duvae_cli.errors import DuvaeError, OutputClosed

CONTEXT = {"help_option_names": ["-h", "--help"]}


class LazyGroup(TyperGroup):
    """The `duvae` group: lists its commands from `COMMANDS` (name, one-line help) and builds a
    command, importing its module, only when it is resolved to run (or to print its own help)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.loaded: set[str] = set()
        for name, entry in COMMANDS.items():  # stand-ins: what the list and "did you mean" read
            self.commands[name] = TyperCommand(name, help=entry.help, hidden=entry.hidden)

    def resolve_command(self, ctx, args):
        name, command, rest = super().resolve_command(ctx, args)
        if name in COMMANDS and name not in self.loaded:
            command = self.commands[name] = _command(name)
            self.loaded.add(name)
        return name, command, rest


def _command(name: str) -> TyperCommand:
    """Command `name` built by Typer from its function (declared in duvae_cli/commands/)."""
    one = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    one.command(name, hidden=COMMANDS[name].hidden, context_settings=CONTEXT)(load(name))
    return typer.main.get_command(one)


app = typer.Typer(
    name="duvae",
    cls=LazyGroup,
    help="Train and evaluate VAEs that resist posterior collapse (DU-VAE and its baselines).\n\n"
    "Example: duvae prepare synthetic && duvae train",
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    context_settings=CONTEXT,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"duvae {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                    help="Print the version and exit.")] = None,
) -> None:
    """Train and evaluate VAEs that resist posterior collapse (DU-VAE and its baselines).

    Example: duvae prepare synthetic && duvae train
    """


def _fail(message: str, code: int) -> None:
    rank = int(os.environ.get("RANK", "0") or 0)  # torchrun: rank 0 speaks for an error every rank hits
    if message.strip() and (rank == 0 or code != 2):  # `duvae` alone prints the help, exits 2
        print(f"duvae: error: {'' if rank == 0 else f'[rank {rank}] '}{message}", file=sys.stderr)
    sys.exit(code)


def _stdout_to_devnull() -> None:
    """After a broken pipe, point stdout at /dev/null so that the interpreter's last flush does not
    fail again (what Python's documentation on SIGPIPE recommends)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout without a file descriptor (tests)
        pass


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning every failure into one line and an exit code."""
    from duvae_cli.interrupt import Interrupted, raising

    debug = os.environ.get("DUVAE_DEBUG", "") not in ("", "0")
    try:
        with raising():  # Ctrl-C raises Interrupted: click would turn a KeyboardInterrupt into a silent 130
            code = app(args=argv, standalone_mode=False)
    except OutputClosed:  # `duvae ... | head`: the reader has what it wanted
        _stdout_to_devnull()
        sys.exit(0)
    except Interrupted as exc:  # each command says what it kept and how to continue
        print(f"duvae: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        _fail("aborted", 130)
    except TyperException as exc:  # bad option, missing argument, bad value
        if debug:
            raise
        _fail(exc.format_message().replace("\n", " "), 2)
    except DuvaeError as exc:
        if debug:
            raise
        _fail(str(exc).replace("\n", " "), exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Exception as exc:  # noqa: BLE001 - the one place where any failure becomes one line
        if debug:
            raise
        if isinstance(exc, OSError) and exc.filename:  # a file operation the library did not wrap
            _fail(f"{exc.filename}: {exc.strerror or exc}", 1)
        _fail(f"{type(exc).__name__}: {exc}".replace("\n", " ") + " (DUVAE_DEBUG=1 for the traceback)", 1)
    sys.exit(code or 0)
