"""`duvae prepare`: raw data to OUT/NAME/dataset.h5."""

from __future__ import annotations

from typing import Annotated

import typer

from duvae_cli.commands.common import JSON, QUIET, command
from duvae_cli.prepare.options import PREPARE_OPTIONS


@command(PREPARE_OPTIONS, (QUIET, JSON))
def prepare(
    name: Annotated[str, typer.Argument(help="Dataset: synthetic, ptb, yahoo, yelp, short-yelp, yelp-sentiment, "
                                        "text, omniglot or mnist.")],
    **values,
) -> None:
    """Turn a raw dataset into OUT/NAME/dataset.h5 and print a summary.

    Example: duvae prepare short-yelp --source ../shared/data/short_yelp
    """
    from duvae_cli.console import CliReporter
    from duvae_cli.prepare.prepare import PrepareOptions, prepare_dataset

    summary = prepare_dataset(name, PrepareOptions.from_flags(values), reporter=CliReporter(values["quiet"]))
    _print_summary(summary, values["json"])


def _print_summary(summary, as_json: bool) -> None:
    from duvae_cli.console import emit_json, print_table

    if as_json:
        emit_json(summary.to_dict())
    else:
        print_table(summary.title(), summary.columns(), summary.rows())
        for line in summary.lines():
            typer.echo(line)
