"""`duvae export` and `duvae migrate`: a run to share, and a run of an earlier duvae made safe to open
(docs/use.md, docs/runs.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from duvae_cli.commands.common import JSON, QUIET, command
from duvae_cli.options import CHECKPOINT

EXPORT_OPTIONS = (CHECKPOINT.but(help="best or last: the checkpoint to export."),)


@command(EXPORT_OPTIONS, (QUIET, JSON))
def export(run: Annotated[Path, typer.Argument(help="The run directory to export.")],
           out: Annotated[Path, typer.Argument(help="The export folder to write (must not exist).")],
           **values) -> None:
    """A self-contained, Hub-style folder of a run: model.safetensors, config.json, vocabulary, data
    fingerprints, metrics with their provenance and a README.md model card listing every file's sha256.

    Example: duvae export runs/latest exports/ptb-du --checkpoint best
    """
    from duvae_cli.console import CliReporter, emit_json
    from duvae_cli.runs.export import export_run

    summary = export_run(run, out, values["checkpoint"])
    CliReporter(values["quiet"]).log(f"wrote {len(summary['files'])} files into {out}; load it with "
                                     f"duvae_cli.load({str(out)!r})")
    emit_json(summary) if values["json"] else typer.echo(str(out))


@command((QUIET, JSON))
def migrate(run: Annotated[Path, typer.Argument(help="A run directory made by an earlier duvae "
                                                     "(checkpoints/*.pt).")],
            **values) -> None:
    """Convert a run's pickled checkpoints to safetensors with PyTorch's restricted unpickler (nothing in
    them is executed); its stored numbers stay current.

    Example: duvae migrate runs/ptb-du-20240101T000000Z-1a2b3c4d
    """
    from duvae_cli.console import CliReporter, emit_json
    from duvae_cli.runs.layout import checkpoint_path, old_checkpoint_path
    from duvae_cli.runs.migrate import migrate_run

    summary = migrate_run(run)
    reporter = CliReporter(values["quiet"])
    for name, shas in summary["converted"].items():
        reporter.log(f"{old_checkpoint_path(run, name)} -> {checkpoint_path(run, name).name} "
                     f"(sha256 {shas['sha256'][:12]})")
    if not summary["converted"]:
        reporter.log(f"{run}: no pickled checkpoint; nothing to convert")
    emit_json(summary) if values["json"] else typer.echo(str(run))
