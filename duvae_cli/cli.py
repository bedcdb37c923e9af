"""The `duvae` command: a thin Typer shell over the library.

The commands live in `duvae_cli/commands/` (one module per group); each translates flags into
library calls and prints the result. Errors are turned into one line and an exit code in exactly one place, `main()`: 0 success, 1 failure, 2 usage error.
`DUVAE_DEBUG=1` shows the traceback instead.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Optional

import typer
from typer.exceptions import TyperException

from duvae_cli import __version__
from duvae_cli.commands import evaluate, figures, prepare, sweep, train, use
from duvae_cli.errors import DuvaeError

app = typer.Typer(
    name="duvae",
    help="Train and evaluate VAEs that resist posterior collapse (DU-VAE and its baselines).\n\n"
    "Example: duvae prepare synthetic && duvae train",
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
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


app.command()(prepare.prepare)
app.command()(train.build_train_command())
app.command()(evaluate.evaluate)
app.command()(evaluate.classify)
app.command()(figures.visualize)
app.command()(figures.report)
app.command()(sweep.sweep)
app.command("sweep-task", hidden=True)(sweep.sweep_task)  # one SLURM array task (sweep/slurm.py)
use.register(app)  # encode, generate (docs/use.md)


def _fail(message: str, code: int) -> None:
    rank = int(os.environ.get("RANK", "0") or 0)  # torchrun: rank 0 speaks for an error every rank hits
    if message.strip() and (rank == 0 or code != 2):  # `duvae` alone prints the help, exits 2
        print(f"duvae: error: {'' if rank == 0 else f'[rank {rank}] '}{message}", file=sys.stderr)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning every failure into one line and an exit code."""
    from duvae_cli.interrupt import Interrupted, raising

    debug = os.environ.get("DUVAE_DEBUG", "") not in ("", "0")
    try:
        with raising():  # Ctrl-C raises Interrupted: click would turn a KeyboardInterrupt into a silent 130
            code = app(args=argv, standalone_mode=False)
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
