"""`duvae visualize`: figures and text samples from saved run artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from duvae_cli.commands.common import JSON, LATEST, QUIET, command
from duvae_cli.viz import KIND, VIZ_OPTIONS
from duvae_cli.viz.samples import SAMPLE_OPTIONS


@command((KIND,), VIZ_OPTIONS, SAMPLE_OPTIONS, (QUIET, JSON))
def visualize(
    runs: Annotated[Optional[list[Path]], typer.Argument(help="Run directories (default: runs/latest); "
                                                         "--kind grid takes many.")] = None,
    **values,
) -> None:
    """Figures (and text samples) drawn only from saved run artifacts; prints the written paths.

    Example: duvae visualize runs/latest --kind latent
    """
    from duvae_cli.console import CliReporter, emit_json
    from duvae_cli.viz import SampleOptions, VizOptions, visualize as draw

    options = VizOptions.from_flags({**values, "samples": SampleOptions.from_flags(values)})
    paths = draw(runs or [LATEST], values["kind"], options, CliReporter(values["quiet"]))
    if values["json"]:
        emit_json({"kind": values["kind"], "files": [str(p) for p in paths]})
    else:
        for path in paths:
            typer.echo(str(path))
