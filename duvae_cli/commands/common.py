"""Reusable typed options (one definition, used by every command) and small shared helpers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress or log lines on stderr (notes on "
                                     "what a result is of still show).")]
Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
LogOption = Annotated[Optional[list[str]], typer.Option(
    "--log", help="Also log to tensorboard or mlflow (repeatable; csv = history.csv, always written); "
    "needs the `tracking` extra of duvae (tensorboard, mlflow-skinny); see docs/tracking.md.")]
RunArg = Annotated[Path, typer.Argument(help="Run directory (default: runs/latest).")]
DataRoot = Annotated[Optional[Path], typer.Option(
    help="A moved run's data: when the recorded dataset path is gone, use DIR/NAME/dataset.h5 if it holds "
         "the same data (then the run's data_root, then ./data; docs/runs.md).")]
ResultsOut = Annotated[Optional[Path], typer.Option(
    "--out", help="Write the results (and the evaluation's lock and partial results) into this folder "
    "instead of the run directory, e.g. for a run on a read-only file system.")]


def join_torchrun():
    """This process's place under torchrun: a world of one outside it; only rank 0 prints."""
    from duvae_cli.runtime.distributed import join

    return join()
