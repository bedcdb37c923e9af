"""`duvae sweep`: flags -> sweep.SweepOptions -> sweep.run_sweep; prints the report and the grid path.
Its training flags are `duvae train`'s own (the same declarations: commands/common.py config_options)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from duvae_cli.commands.common import JSON, QUIET, command, config_options
from duvae_cli.errors import DuvaeError
from duvae_cli.sweep import SWEEP_OPTIONS
from duvae_cli.sweep.slurm import SLURM_OPTIONS

TRAIN_FLAGS = tuple(o if o.panel else o.but(panel="Training options (as `duvae train`)") for o in config_options())


@command(SWEEP_OPTIONS, TRAIN_FLAGS, SLURM_OPTIONS, (QUIET, JSON))
def sweep(**values) -> None:
    """Train a grid of runs (resumable: finished points are skipped, interrupted ones resumed), then
    print the sweep's report and draw its Figure-2 grid.

    Example: duvae sweep --grid gamma=0.4,0.5,0.6,0.7 --grid p=1,0.9,0.8,0.7,0.6 --workers 2
    """
    from duvae_cli.console import CliReporter
    from duvae_cli.sweep import SweepOptions, run_sweep
    from duvae_cli.sweep.slurm import SlurmOptions

    reporter = CliReporter(values["quiet"])
    flags = {option.name: values[option.name] for option in TRAIN_FLAGS}  # None = unset
    options = SweepOptions.from_flags({**values, "flags": flags, "slurm": SlurmOptions.from_flags(values),
                                       "resume": shlex.join(["duvae", *sys.argv[1:]])})
    result = run_sweep(options, reporter)
    for note in result.notes:
        reporter.log(note)
    _print_result(result, values["json"])
    if result.failed:
        raise DuvaeError(f"{len(result.failed)} of {len(result.points)} points failed: "
                         + "; ".join(f"{p['name']}: {p['error']}" for p in result.failed))


def _print_result(result, as_json: bool) -> None:
    from duvae_cli.console import emit_json

    if as_json:
        emit_json({"root": str(result.root), "points": result.points, "report": result.report,
                   "figure": str(result.figure) if result.figure else None, "script": result.script})
    else:
        sys.stdout.write(result.script or result.report or "")
        if result.figure:
            typer.echo(str(result.figure))


def sweep_task(
    tasks: Annotated[Path, typer.Argument(help="ROOT/slurm/tasks.json, written by `duvae sweep "
                                          "--launcher slurm`.")],
    index: Annotated[int, typer.Argument(help="The array task: $SLURM_ARRAY_TASK_ID.")],
) -> None:
    """One SLURM array task of a sweep: its point's commands (hidden: the job script calls it).

    Example: duvae sweep-task runs/sweep-yelp-du/slurm/tasks.json 3
    """
    from duvae_cli.sweep.slurm import run_task

    result = run_task(tasks, index)
    if result["status"] == "failed":
        raise DuvaeError(f"{result['name']}: {result['error']}")
