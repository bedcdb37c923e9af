"""`duvae prepare`: raw data to OUT/NAME/dataset.h5."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from duvae_cli.commands.common import Json, Quiet

def prepare(
    name: Annotated[str, typer.Argument(help="Dataset: synthetic, ptb, yahoo, yelp, short-yelp, yelp-sentiment, "
                                        "text, omniglot or mnist.")],
    source: Annotated[Optional[str], typer.Option(help="Folder, file or URL (http, https, file; a URL ending "
                                                  "in / is a folder) with the raw data (default: the local "
                                                  "copy, else the registry's canonical URLs).")] = None,
    out: Annotated[Path, typer.Option(help="Workspace; writes OUT/NAME/dataset.h5.")] = Path("data"),
    as_name: Annotated[Optional[str], typer.Option("--as", help="Output name instead of NAME "
                                                   "(e.g. for your own `text` corpus).")] = None,
    tokenizer: Annotated[str, typer.Option(help="word or sentencepiece.")] = "word",
    vocab_size: Annotated[Optional[int], typer.Option(help="Vocabulary size, the 4 special tokens included: "
                                                      "keep the most frequent train words (sentencepiece: "
                                                      "model size, default 8000).")] = None,
    vocab: Annotated[Optional[Path], typer.Option(help="Impose this vocabulary file (one token a line, "
                                                  "<pad> <s> </s> <unk> first).")] = None,
    min_freq: Annotated[int, typer.Option(help="Drop words seen fewer times in train.")] = 1,
    max_length: Annotated[Optional[int], typer.Option(help="Drop sentences with more tokens.")] = None,
    train: Annotated[Optional[Path], typer.Option(help="text: the train file (alone: carved by --split).")] = None,
    valid: Annotated[Optional[Path], typer.Option(help="text: the valid file.")] = None,
    test: Annotated[Optional[Path], typer.Option(help="text: the test file.")] = None,
    split: Annotated[str, typer.Option(help="Fractions train,valid,test when one file is carved.")] = "0.8,0.1,0.1",
    seed: Annotated[int, typer.Option(help="Seed for splits, binarisation and generated data.")] = 783435,
    force: Annotated[bool, typer.Option(help="Replace an existing prepared dataset.")] = False,
    quiet: Quiet = False,
    json: Json = False,
) -> None:
    """Turn a raw dataset into OUT/NAME/dataset.h5 and print a summary.

    Example: duvae prepare short-yelp --source ../shared/data/short_yelp
    """
    from duvae_cli.console import CliReporter
    from duvae_cli.prepare.prepare import PrepareOptions, prepare_dataset

    options = PrepareOptions(
        source=source, out=out, tokenizer=tokenizer, vocab_size=vocab_size, vocab=vocab,
        min_freq=min_freq, max_length=max_length, train=train, valid=valid, test=test,
        split=split, seed=seed, force=force, as_name=as_name,
    )
    summary = prepare_dataset(name, options, reporter=CliReporter(quiet))
    _print_summary(summary, json)


def _print_summary(summary, as_json: bool) -> None:
    from duvae_cli.console import emit_json, print_table

    if as_json:
        emit_json(summary.to_dict())
    else:
        print_table(summary.title(), summary.columns(), summary.rows())
        for line in summary.lines():
            typer.echo(line)
