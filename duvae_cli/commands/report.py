"""`duvae report`: the table across runs, read from their files only (tables/), without torch."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from duvae_cli.commands.common import QUIET, command
from duvae_cli.options import CHECKPOINT, Option
from duvae_cli.tables.format import FORMATTERS

REPORT_OPTIONS = (
    Option("format", str, "markdown", "markdown, csv, latex or json.", choices=tuple(FORMATTERS)),
    Option("metrics", str, "iw_nll,kl,mi,au", "metrics.csv metrics to show, comma-separated."),
    Option("split", str, "test", "Split of the numbers."),
    CHECKPOINT.but(help="Numbers of the best or last checkpoint."),
    Option("out", Path, None, "Write the table here instead of stdout."),
    Option("strict", bool, False, "Exit 1, writing nothing, if a number is stale (its checkpoint changed since) "
           "or cannot be checked.", flags=("--strict/--no-strict",)),
)


@command(REPORT_OPTIONS, (QUIET,))
def report(runs: Annotated[list[Path], typer.Argument(help="Run directories (e.g. runs/*).")], **values) -> None:
    """One row per model and evaluation settings (runs grouped by dataset, model and config; mean ±
    std over seeds): NLL, KL, MI, AU from metrics.csv and probe accuracies per label budget from
    probe.csv, with K, examples and a `stale` column.

    Example: duvae report runs/* --format latex --out table.tex
    """
    from duvae_cli.console import CliReporter
    from duvae_cli.errors import DuvaeError
    from duvae_cli.io import atomic_write_text
    from duvae_cli.tables import build_report, format_table

    names = tuple(m.strip() for m in values["metrics"].split(",") if m.strip())
    reporter = CliReporter(values["quiet"])
    table = build_report(runs, names, values["split"], values["checkpoint"], reporter=reporter)
    text = format_table(table, values["format"])
    note = table.freshness_note()
    if note and values["strict"]:
        raise DuvaeError(f"--strict: {note}")
    if note:
        reporter.note(note)  # shown with --quiet too: the table holds numbers that are not current
    if values["out"] is None:
        sys.stdout.write(text)
    else:
        atomic_write_text(values["out"], text)
        typer.echo(str(values["out"]))
