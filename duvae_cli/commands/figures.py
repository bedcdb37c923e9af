"""`duvae visualize` and `duvae report`: figures and tables from saved run artifacts."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from duvae_cli.commands.common import Json, Quiet

def visualize(
    runs: Annotated[Optional[list[Path]], typer.Argument(help="Run directories (default: runs/latest); "
                                                         "--kind grid takes many.")] = None,
    kind: Annotated[str, typer.Option(help="latent, curves, dims, grid or samples.")] = "latent",
    out: Annotated[Optional[Path], typer.Option(help="Output file: .png, .svg or .pdf (samples: text); "
                                                "default RUN/figures/KIND.png.")] = None,
    metric: Annotated[str, typer.Option(help="grid: a metrics.csv metric or history.csv column "
                                        "(mi, au, iw_nll, val_loss, ...).")] = "mi",
    split: Annotated[str, typer.Option(help="Split to encode or read metrics from.")] = "test",
    checkpoint: Annotated[str, typer.Option(help="best or last.")] = "best",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    n: Annotated[int, typer.Option("--n", help="samples: sentences to reconstruct and prior codes.")] = 10,
    beam: Annotated[int, typer.Option(help="samples: beam width.")] = 5,
    temperature: Annotated[float, typer.Option(help="samples: sampling temperature.")] = 1.0,
    max_length: Annotated[Optional[int], typer.Option(help="samples: most words per sentence.")] = None,
    seed: Annotated[int, typer.Option(help="samples: which sentences and prior codes.")] = 783435,
    quiet: Quiet = False,
    json: Json = False,
) -> None:
    """Figures (and text samples) drawn only from saved run artifacts; prints the written paths.

    Example: duvae visualize runs/latest --kind latent
    """
    from duvae_cli.console import CliReporter, emit_json
    from duvae_cli.viz import SampleOptions, VizOptions, visualize as draw

    samples = SampleOptions(n=n, beam=beam, temperature=temperature, max_length=max_length, seed=seed,
                            split=split, checkpoint=checkpoint, device=device)
    options = VizOptions(out=out, metric=metric, split=split, checkpoint=checkpoint, device=device,
                         samples=samples)
    paths = draw(runs or [Path("runs/latest")], kind, options, CliReporter(quiet))
    if json:
        emit_json({"kind": kind, "files": [str(p) for p in paths]})
    else:
        for path in paths:
            typer.echo(str(path))


def report(
    runs: Annotated[list[Path], typer.Argument(help="Run directories (e.g. runs/*).")],
    fmt: Annotated[str, typer.Option("--format", help="markdown, csv, latex or json.")] = "markdown",
    metrics: Annotated[str, typer.Option(help="metrics.csv metrics to show, comma-separated.")] = "iw_nll,kl,mi,au",
    split: Annotated[str, typer.Option(help="Split of the numbers.")] = "test",
    checkpoint: Annotated[str, typer.Option(help="Numbers of the best or last checkpoint.")] = "best",
    out: Annotated[Optional[Path], typer.Option(help="Write the table here instead of stdout.")] = None,
    strict: Annotated[bool, typer.Option(help="Exit 1, writing nothing, if a number is stale (its "
                                         "checkpoint changed since) or cannot be checked.")] = False,
    quiet: Quiet = False,
) -> None:
    """One row per model and evaluation settings (runs grouped by dataset, model and config; mean ±
    std over seeds): NLL, KL, MI, AU from metrics.csv and probe accuracies per label budget from
    probe.csv, with K, examples and a `stale` column.

    Example: duvae report runs/* --format latex --out table.tex
    """
    from duvae_cli.console import CliReporter
    from duvae_cli.errors import DuvaeError
    from duvae_cli.io import atomic_write_text
    from duvae_cli.tables import build_report, format_table

    names = tuple(m.strip() for m in metrics.split(",") if m.strip())
    reporter = CliReporter(quiet)
    table = build_report(runs, names, split, checkpoint, reporter=reporter)
    text = format_table(table, fmt)
    note = table.freshness_note()
    if note and strict:
        raise DuvaeError(f"--strict: {note}")
    if note:
        reporter.note(note)  # shown with --quiet too: the table holds numbers that are not current
    if out is None:
        sys.stdout.write(text)
    else:
        atomic_write_text(out, text)
        typer.echo(str(out))
