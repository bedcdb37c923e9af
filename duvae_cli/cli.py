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
from duvae_cli.errors import DuvaeError, UsageError

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
LogOption = Annotated[Optional[list[str]], typer.Option(
    "--log", help="Also log to tensorboard or mlflow (repeatable; csv = history.csv, always written); "
    'needs pip install "duvae[tracking]". See docs/tracking.md.')]


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
    from duvae_cli.data.prepare import PrepareOptions, prepare_dataset

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


@app.command()
def train(
    dataset: Annotated[Optional[str], typer.Option(help="Prepared dataset name (data/NAME/dataset.h5).")] = None,
    model: Annotated[Optional[str], typer.Option(help="vae, beta, fb, delta, mae, bn or du (default du); with an "
                                                 "IAF posterior: iaf-fb, iaf-bn or du-iaf.")] = None,
    gamma: Annotated[Optional[float], typer.Option(help="bn/du: scale (RMS) of the BN on the means.")] = None,
    p: Annotated[Optional[float], typer.Option("--p", help="du: keep probability of the variance dropout.")] = None,
    beta: Annotated[Optional[float], typer.Option(help="beta: constant KL weight.")] = None,
    fb_lambda: Annotated[Optional[float], typer.Option(help="fb: per-dimension KL floor.")] = None,
    delta: Annotated[Optional[float], typer.Option(help="delta: per-dimension minimum KL.")] = None,
    mae_eta: Annotated[Optional[float], typer.Option(help="mae: weight of the diversity term.")] = None,
    mae_gamma: Annotated[Optional[float], typer.Option(help="mae: weight of the smoothness term.")] = None,
    strategy: Annotated[Optional[str], typer.Option(help="standard, aggressive (Agg-VAE) or savi (SA-VAE); "
                                                    "composes with any --model.")] = None,
    svi_steps: Annotated[Optional[int], typer.Option(help="savi: refinement steps per batch.")] = None,
    svi_lr: Annotated[Optional[float], typer.Option(help="savi: refinement learning rate.")] = None,
    flow: Annotated[Optional[str], typer.Option(help="Posterior flow: none or iaf (the iaf-* and du-iaf "
                                                "models set iaf).")] = None,
    flow_depth: Annotated[Optional[int], typer.Option(help="iaf: number of IAF blocks.")] = None,
    flow_width: Annotated[Optional[int], typer.Option(help="iaf: MADE hidden units = width x latent dim.")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="Maximum epochs.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Sentences per batch.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Learning rate.")] = None,
    kl_start: Annotated[Optional[float], typer.Option(help="Initial KL weight.")] = None,
    warm_up: Annotated[Optional[float], typer.Option(help="Epochs for the KL weight to reach 1.")] = None,
    latent_dim: Annotated[Optional[int], typer.Option(help="Latent dimensions.")] = None,
    size: Annotated[Optional[str], typer.Option(help="Image networks: paper (ResNet + 13-block PixelCNN) or "
                                                "small (fewer channels and blocks; CPU-sized).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed (recorded).")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu or cuda.")] = None,
    config: Annotated[Optional[Path], typer.Option(help="JSON file of config fields.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a config field: key=value.")] = None,
    run_dir: Annotated[Optional[Path], typer.Option(help="Run directory (default runs/<generated>).")] = None,
    resume: Annotated[Optional[Path], typer.Option(help="Continue this run from its last checkpoint.")] = None,
    checkpoint_every: Annotated[Optional[int], typer.Option(help="Also save last.pt every N steps.")] = None,
    precision: Annotated[Optional[str], typer.Option(help="fp32, bf16 (autocast; CPU or CUDA) or fp16 "
                                                     "(CUDA).")] = None,
    log: LogOption = None,
    log_every: Annotated[Optional[int], typer.Option(help="Log the per-step values every N optimizer steps "
                                                     "(default 10; --resume: the run's own).")] = None,
    quiet: Quiet = False,
    json: Json = False,
) -> None:
    """Train a VAE; with no options, DU-VAE on the synthetic dataset (prepared when absent).

    Example: duvae train --dataset yelp --gamma 0.5 --p 0.8
    """
    from duvae_cli.console import CliReporter
    from duvae_cli.train.config import resolve_config
    from duvae_cli.train.session import resume_run, start_run

    here = _join_torchrun()  # a world of one outside torchrun; only rank 0 prints
    reporter = CliReporter(quiet or not here.is_main)
    flags = dict(dataset=dataset, model=model, gamma=gamma, p=p, beta=beta, fb_lambda=fb_lambda,
                 delta=delta, mae_eta=mae_eta, mae_gamma=mae_gamma, strategy=strategy, svi_steps=svi_steps,
                 svi_lr=svi_lr, flow=flow, flow_depth=flow_depth, flow_width=flow_width,
                 epochs=epochs, batch_size=batch_size, lr=lr, kl_start=kl_start,
                 warm_up=warm_up, latent_dim=latent_dim, size=size, seed=seed, device=device,
                 checkpoint_every=checkpoint_every, precision=precision)
    if resume is not None:
        fixed = [k for k, v in flags.items() if v is not None and k not in ("epochs", "device")]
        if fixed or config or set_ or run_dir:
            raise UsageError("--resume continues a run with its saved config; only --epochs and "
                             f"--device may change (got {', '.join(fixed) or '--config/--set/--run-dir'})")
        done = resume_run(resume, epochs=epochs, device=device, reporter=reporter, log=log,
                          log_every=log_every)
    else:
        resolved = resolve_config("synthetic", "du", flags, config, set_)
        done = start_run(resolved, run_dir=run_dir, reporter=reporter, log=log, log_every=log_every)
    if here.is_main:
        _print_run(done, json)


def _join_torchrun():
    from duvae_cli.train.distributed import join

    return join()


def _print_run(run_dir: Path, as_json: bool) -> None:
    from duvae_cli.console import emit_json, print_table
    from duvae_cli.train.run import read_run_summary

    summary = read_run_summary(run_dir)
    if as_json:
        emit_json(summary)
    else:
        print_table(f"run {summary['run_dir']}", ["metric", "value"], [[k, v] for k, v in summary["final"].items()])


@app.command()
def evaluate(
    run: RunArg = Path("runs/latest"),
    split: Annotated[str, typer.Option(help="Split to evaluate (train, valid or test).")] = "test",
    iw_samples: Annotated[int, typer.Option(help="K, importance samples per example for IW-NLL.")] = 500,
    mi_estimator: Annotated[str, typer.Option(help="whole (aggregate posterior over the whole split) or "
                                              "batch (He et al.: per batch of --batch-size).")] = "whole",
    au_threshold: Annotated[float, typer.Option(help="A dimension is active if Var(mean) >= this.")] = 0.01,
    seed: Annotated[int, typer.Option(help="Evaluation seed: example i's noise depends on (seed, i) only.")]
    = 783435,
    batch_size: Annotated[int, typer.Option(help="Examples per encoder batch.")] = 64,
    memory_budget: Annotated[str, typer.Option(help="Working memory for the samples, e.g. 2GB, 500MB.")] = "1GB",
    checkpoint: Annotated[str, typer.Option(help="best or last.")] = "best",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    examples: Annotated[Optional[int], typer.Option(
        help="Evaluate a random subset of N examples of the split (seeded by --seed; each keeps the "
             "numbers a whole-split evaluation gives it).")] = None,
    log: LogOption = None,
    quiet: Quiet = False,
    json: Json = False,
) -> None:
    """IW-NLL, PPL, ELBO, KL, MI, AU, MPD and CE of a trained run; writes metrics.h5 and metrics.csv.

    Example: duvae evaluate runs/latest --iw-samples 500 --split test
    """
    from duvae_cli.console import CliReporter, emit_json, print_table
    from duvae_cli.metrics import EvalOptions, evaluate_run, parse_memory

    from duvae_cli.tracking import check_trackers

    check_trackers(log)  # a missing package fails before the evaluation, not after
    here = _join_torchrun()  # a world of one outside torchrun; only rank 0 prints
    reporter = CliReporter(quiet or not here.is_main)
    options = EvalOptions(iw_samples=iw_samples, mi_estimator=mi_estimator, au_threshold=au_threshold,
                          seed=seed, batch_size=batch_size, memory_budget=parse_memory(memory_budget),
                          examples=examples)
    report = evaluate_run(run, split, checkpoint, options, device, reporter)  # sharded under torchrun
    if not here.is_main:
        return
    reporter.log(f"wrote {report.files['metrics_h5']} ({report.files['group']}) and {report.files['metrics_csv']}")
    if log:
        from duvae_cli.tracking import add_results
        from duvae_cli.tracking.records import evaluation_scalars

        add_results(run, log, evaluation_scalars(report))
    if json:
        emit_json(report.to_dict())
    else:
        print_table(report.title(), ["metric", "value", "estimator"], report.rows())


@app.command()
def classify(
    run: RunArg = Path("runs/latest"),
    labels: Annotated[Optional[list[int]], typer.Option(
        "--labels", help="Label budget N (repeat the option for several; default: the dataset's official "
        "budgets, else 100).")] = None,
    repeats: Annotated[int, typer.Option(help="Redraw the labelled subsets with R seeds (an official subset "
                                         "is fixed: the probe is re-run with R seeds); mean and std.")] = 1,
    per_class: Annotated[Optional[list[int]], typer.Option(
        "--per-class", help="Omniglot: train each alphabet's probe on the first K drawings of every character "
        "(repeat the option for several; default 5, 10 and 15).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of repeat 0; repeat r uses seed + r.")] = 783435,
    checkpoint: Annotated[str, typer.Option(help="best or last.")] = "best",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda (for encoding).")] = "auto",
    log: LogOption = None,
    quiet: Quiet = False,
    json: Json = False,
) -> None:
    """Linear-probe accuracy of the posterior means per label budget (Omniglot: one probe per alphabet
    per --per-class K); writes probe.csv and metrics.h5.

    Example: duvae classify --labels 100
    """
    from duvae_cli.console import CliReporter
    from duvae_cli.probe import ClassifyOptions, classify_run, result_json, write_outputs
    from duvae_cli.probe.features import dataset_kind

    from duvae_cli.tracking import add_results, check_trackers
    from duvae_cli.tracking.records import probe_scalars

    reporter = CliReporter(quiet)
    check_trackers(log)
    if dataset_kind(run) == "image":
        if labels or repeats != 1:
            raise UsageError("--labels/--repeats: image runs use the per-alphabet protocol (--per-class)")
        payload = _classify_alphabets(run, per_class, seed, checkpoint, device, reporter, json)
        return add_results(run, log, probe_scalars(payload))
    if per_class:
        raise UsageError("--per-class: only for Omniglot runs (the per-alphabet protocol); use --labels")
    options = ClassifyOptions(budgets=tuple(labels or ()), repeats=repeats, seed=seed,
                              checkpoint=checkpoint, device=device)
    result = classify_run(run, options, reporter=reporter)
    files = write_outputs(result)
    reporter.log(f"wrote {', '.join(map(str, files))}")
    payload = result_json(result, files)
    _print_probe(payload, json)
    add_results(run, log, probe_scalars(payload))


def _classify_alphabets(run: Path, per_class, seed: int, checkpoint: str, device: str, reporter,
                        as_json: bool) -> None:
    from duvae_cli.console import emit_json, print_table
    from duvae_cli.probe.alphabets import AlphabetOptions, classify_alphabets
    from duvae_cli.probe.outputs import alphabet_json, write_alphabet_outputs

    options = AlphabetOptions(per_class=tuple(per_class or (5, 10, 15)), seed=seed, checkpoint=checkpoint,
                              device=device)
    result = classify_alphabets(run, options, reporter)
    files = write_alphabet_outputs(result)
    reporter.log(f"wrote {', '.join(map(str, files))}")
    payload = alphabet_json(result, files)
    if as_json:
        emit_json(payload)
        return payload
    rows = [[r["per_class"], r["alphabets"], r["n_train"], r["n_test"], r["accuracy_mean"],
             r["accuracy_char_weighted"]] for r in payload["results"]]
    print_table(f"per-alphabet linear probes: {Path(payload['run']).name} ({payload['checkpoint']})",
                ["per class", "alphabets", "n_train", "n_test", "mean acc", "char-weighted acc"], rows)
    return payload


def _print_probe(payload: dict, as_json: bool) -> None:
    from duvae_cli.console import emit_json, print_table

    if as_json:
        return emit_json(payload)
    rows = [[r["labels"], r["subset"], r["n_train"], r["repeats"], r["accuracy_mean"],
             "-" if r["accuracy_std"] is None else r["accuracy_std"], r["valid_accuracy_mean"]]
            for r in payload["results"]]
    title = (f"linear probe: {Path(payload['run']).name} ({payload['checkpoint']}), test n={payload['n_test']}, "
             f"majority class {payload['majority_accuracy']:.4f}")
    print_table(title, ["labels", "subset", "n_train", "repeats", "test acc", "std", "valid acc"], rows)


@app.command()
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
    from duvae_cli.console import emit_json
    from duvae_cli.viz import SampleOptions, VizOptions, visualize as draw

    samples = SampleOptions(n=n, beam=beam, temperature=temperature, max_length=max_length, seed=seed,
                            split=split, checkpoint=checkpoint, device=device)
    options = VizOptions(out=out, metric=metric, split=split, checkpoint=checkpoint, device=device,
                         samples=samples)
    paths = draw(runs or [Path("runs/latest")], kind, options)
    if json:
        emit_json({"kind": kind, "files": [str(p) for p in paths]})
    else:
        for path in paths:
            typer.echo(str(path))


@app.command()
def report(
    runs: Annotated[list[Path], typer.Argument(help="Run directories (e.g. runs/*).")],
    fmt: Annotated[str, typer.Option("--format", help="markdown, csv or latex.")] = "markdown",
    metrics: Annotated[str, typer.Option(help="metrics.csv metrics to show, comma-separated.")] = "iw_nll,kl,mi,au",
    split: Annotated[str, typer.Option(help="Split of the numbers.")] = "test",
    checkpoint: Annotated[str, typer.Option(help="Numbers of the best or last checkpoint.")] = "best",
    out: Annotated[Optional[Path], typer.Option(help="Write the table here instead of stdout.")] = None,
    quiet: Quiet = False,
) -> None:
    """One row per model (runs grouped by dataset, model and config; mean ± std over seeds): NLL, KL,
    MI, AU from metrics.csv and probe accuracies per label budget from probe.csv.

    Example: duvae report runs/* --format latex --out table.tex
    """
    from duvae_cli.console import CliReporter
    from duvae_cli.io import atomic_write_text
    from duvae_cli.tables import build_report, format_table

    names = tuple(m.strip() for m in metrics.split(",") if m.strip())
    table = build_report(runs, names, split, checkpoint, reporter=CliReporter(quiet))
    text = format_table(table, fmt)
    if out is None:
        sys.stdout.write(text)
    else:
        atomic_write_text(out, text)
        typer.echo(str(out))


def _fail(message: str, code: int) -> None:
    rank = int(os.environ.get("RANK", "0") or 0)  # torchrun: rank 0 speaks for an error every rank hits
    if message.strip() and (rank == 0 or code != 2):  # `duvae` alone prints the help, exits 2
        print(f"duvae: error: {'' if rank == 0 else f'[rank {rank}] '}{message}", file=sys.stderr)
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


from duvae_cli import cli_sweep as _cli_sweep  # noqa: E402,F401  registers `duvae sweep` on the app
