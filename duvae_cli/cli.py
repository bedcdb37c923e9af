"""The `duvae` command: a thin Typer shell over the library.

Each command translates flags into library calls and prints the result. Errors are turned into one
line and an exit code in exactly one place, `main()`: 0 success, 1 failure, 2 usage error.
`DUVAE_DEBUG=1` shows the traceback instead.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.exceptions import TyperException

from duvae_cli import __version__
from duvae_cli.errors import DuvaeError, NotImplementedYet, UsageError

app = typer.Typer(
    name="duvae",
    help="Train and evaluate VAEs that resist posterior collapse (DU-VAE and its baselines).\n\n"
    "Example: duvae prepare synthetic && duvae train",
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Reusable typed options (one definition, used by every command).
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress or log lines on stderr.")]
Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
RunArg = Annotated[Path, typer.Argument(help="Run directory (default: runs/latest).")]


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


@app.command()
def prepare(
    name: Annotated[str, typer.Argument(help="Dataset: synthetic, ptb, yahoo, yelp, short-yelp, yelp-sentiment, "
                                        "text, omniglot or mnist.")],
    source: Annotated[Optional[str], typer.Option(help="Folder, file or URL with the raw data "
                                                  "(default: the registry's local/canonical source).")] = None,
    out: Annotated[Path, typer.Option(help="Workspace; writes OUT/NAME/dataset.h5.")] = Path("data"),
    tokenizer: Annotated[str, typer.Option(help="word or sentencepiece.")] = "word",
    vocab_size: Annotated[Optional[int], typer.Option(help="Keep the N most frequent words "
                                                      "(sentencepiece: model size).")] = None,
    vocab: Annotated[Optional[Path], typer.Option(help="Impose this vocabulary file (one token a line).")] = None,
    min_freq: Annotated[int, typer.Option(help="Drop words seen fewer times in train.")] = 1,
    max_length: Annotated[Optional[int], typer.Option(help="Drop sentences with more tokens.")] = None,
    train: Annotated[Optional[Path], typer.Option(help="text: the train file.")] = None,
    valid: Annotated[Optional[Path], typer.Option(help="text: the valid file.")] = None,
    test: Annotated[Optional[Path], typer.Option(help="text: the test file.")] = None,
    split: Annotated[str, typer.Option(help="text with one file: train,valid,test fractions.")] = "0.8,0.1,0.1",
    seed: Annotated[int, typer.Option(help="Seed for splits and generated data.")] = 783435,
    force: Annotated[bool, typer.Option(help="Replace an existing prepared dataset.")] = False,
    quiet: Quiet = False,
    json: Json = False,
) -> None:
    """Turn a raw dataset into OUT/NAME/dataset.h5 and print a summary.

    Example: duvae prepare short-yelp --source ../shared/data/short_yelp
    """
    from duvae_cli.console import CliReporter
    from duvae_cli.data.prepare import PrepareOptions, prepare_dataset

    options = PrepareOptions(
        source=source, out=out, tokenizer=tokenizer, vocab_size=vocab_size, vocab=vocab,
        min_freq=min_freq, max_length=max_length, train=train, valid=valid, test=test,
        split=split, seed=seed, force=force,
    )
    summary = prepare_dataset(name, options, reporter=CliReporter(quiet))
    _print_summary(summary, json)


def _print_summary(summary, as_json: bool) -> None:
    from duvae_cli.console import emit_json, print_table

    if as_json:
        emit_json(summary.to_dict())
    else:
        print_table(summary.title(), summary.columns(), summary.rows())


@app.command()
def train(
    dataset: Annotated[Optional[str], typer.Option(help="Prepared dataset name (data/NAME/dataset.h5).")] = None,
    model: Annotated[Optional[str], typer.Option(help="vae, beta, fb, delta, bn or du (default du).")] = None,
    gamma: Annotated[Optional[float], typer.Option(help="bn/du: scale (RMS) of the BN on the means.")] = None,
    p: Annotated[Optional[float], typer.Option("--p", help="du: keep probability of the variance dropout.")] = None,
    beta: Annotated[Optional[float], typer.Option(help="beta: constant KL weight.")] = None,
    fb_lambda: Annotated[Optional[float], typer.Option(help="fb: per-dimension KL floor.")] = None,
    delta: Annotated[Optional[float], typer.Option(help="delta: per-dimension minimum KL.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Maximum epochs.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Sentences per batch.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Learning rate.")] = None,
    kl_start: Annotated[Optional[float], typer.Option(help="Initial KL weight.")] = None,
    warm_up: Annotated[Optional[float], typer.Option(help="Epochs for the KL weight to reach 1.")] = None,
    latent_dim: Annotated[Optional[int], typer.Option(help="Latent dimensions.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed (recorded).")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu or cuda.")] = None,
    config: Annotated[Optional[Path], typer.Option(help="JSON file of config fields.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a config field: key=value.")] = None,
    run_dir: Annotated[Optional[Path], typer.Option(help="Run directory (default runs/<generated>).")] = None,
    resume: Annotated[Optional[Path], typer.Option(help="Continue this run from its last checkpoint.")] = None,
    checkpoint_every: Annotated[Optional[int], typer.Option(help="Also save last.pt every N steps.")] = None,
    quiet: Quiet = False,
    json: Json = False,
) -> None:
    """Train a VAE; with no options, DU-VAE on the synthetic dataset (prepared when absent).

    Example: duvae train --dataset yelp --gamma 0.5 --p 0.8
    """
    from duvae_cli.console import CliReporter
    from duvae_cli.train.config import resolve_config
    from duvae_cli.train.session import resume_run, start_run

    reporter = CliReporter(quiet)
    flags = dict(dataset=dataset, model=model, gamma=gamma, p=p, beta=beta, fb_lambda=fb_lambda,
                 delta=delta, epochs=epochs, batch_size=batch_size, lr=lr, kl_start=kl_start,
                 warm_up=warm_up, latent_dim=latent_dim, seed=seed, device=device,
                 checkpoint_every=checkpoint_every)
    if resume is not None:
        fixed = [k for k, v in flags.items() if v is not None and k not in ("epochs", "device")]
        if fixed or config or set_ or run_dir:
            raise UsageError("--resume continues a run with its saved config; only --epochs and "
                             f"--device may change (got {', '.join(fixed) or '--config/--set/--run-dir'})")
        done = resume_run(resume, epochs=epochs, device=device, reporter=reporter)
    else:
        resolved = resolve_config("synthetic", "du", flags, config, set_)
        done = start_run(resolved, run_dir=run_dir, reporter=reporter)
    _print_run(done, json)


def _print_run(run_dir: Path, as_json: bool) -> None:
    from duvae_cli.console import emit_json, print_table
    from duvae_cli.train.run import read_run_summary

    summary = read_run_summary(run_dir)
    if as_json:
        emit_json(summary)
    else:
        print_table(f"run {summary['run_dir']}", ["metric", "value"], [[k, v] for k, v in summary["final"].items()])


@app.command()
def evaluate(run: RunArg = Path("runs/latest"), quiet: Quiet = False, json: Json = False) -> None:
    """Evaluate a trained run: IW-NLL, KL, MI, AU, PPL, MPD, CE.

    Example: duvae evaluate runs/latest --iw-samples 500
    """
    raise NotImplementedYet("duvae evaluate")


@app.command()
def classify(run: RunArg = Path("runs/latest"), quiet: Quiet = False, json: Json = False) -> None:
    """Linear-probe accuracy of the learned representation.

    Example: duvae classify --labels 100
    """
    raise NotImplementedYet("duvae classify")


@app.command()
def visualize(run: RunArg = Path("runs/latest"), quiet: Quiet = False) -> None:
    """Figures from saved run artifacts.

    Example: duvae visualize runs/latest --kind latent
    """
    raise NotImplementedYet("duvae visualize")


def _fail(message: str, code: int) -> None:
    if message.strip():  # `duvae` alone prints the help and exits 2 with nothing more to say
        print(f"duvae: error: {message}", file=sys.stderr)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning every failure into one line and an exit code."""
    debug = os.environ.get("DUVAE_DEBUG", "") not in ("", "0")
    try:
        code = app(args=argv, standalone_mode=False)
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
        _fail(f"{type(exc).__name__}: {exc}".replace("\n", " ") + " (DUVAE_DEBUG=1 for the traceback)", 1)
    sys.exit(code or 0)
