"""`duvae evaluate` and `duvae classify`: numbers of a trained run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from duvae_cli.commands.common import DataRoot, Json, LogOption, Quiet, ResultsOut, RunArg, join_torchrun
from duvae_cli.errors import UsageError


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
    data: Annotated[Optional[Path], typer.Option(
        help="Evaluate this data instead (text file, dataset.h5 + --split, or .npz), tokenized with the run's "
             "vocabulary; written under the split name NAME@FINGERPRINT (docs/use.md).")] = None,
    out: ResultsOut = None,
    data_root: DataRoot = None,
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
    here = join_torchrun()  # a world of one outside torchrun; only rank 0 prints
    reporter = CliReporter(quiet or not here.is_main, notes=here.is_main)
    options = EvalOptions(iw_samples=iw_samples, mi_estimator=mi_estimator, au_threshold=au_threshold,
                          seed=seed, batch_size=batch_size, memory_budget=parse_memory(memory_budget),
                          examples=examples)
    if data is not None:  # new data: one process (use/newdata.py)
        from duvae_cli.use.newdata import evaluate_data

        report = evaluate_data(run, data, None if split == "test" and data.suffix != ".h5" else split,
                               checkpoint, options, device, reporter, out=out, data_root=data_root)
    else:  # sharded under torchrun
        report = evaluate_run(run, split, checkpoint, options, device, reporter, out=out, data_root=data_root)
    if not here.is_main:
        return
    reporter.log(f"wrote {report.files['metrics_h5']} ({report.files['group']}) and {report.files['metrics_csv']}")
    if json:
        emit_json(report.to_dict())
    else:
        print_table(report.title(), ["metric", "value", "estimator"], report.rows())
    if log:
        from duvae_cli.tracking import add_results
        from duvae_cli.tracking.records import evaluation_scalars

        add_results(run, log, evaluation_scalars(report))


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
    data: Annotated[Optional[list[str]], typer.Option(
        help="Probe new labelled data: one dataset.h5, or train=FILE valid=FILE test=FILE (repeat the option; "
             "LABEL<TAB> lines); default budget: all its train examples (docs/use.md).")] = None,
    out: ResultsOut = None,
    data_root: DataRoot = None,
    log: LogOption = None,
    quiet: Quiet = False,
    json: Json = False,
) -> None:
    """Linear-probe accuracy of the posterior means per label budget (Omniglot: one probe per alphabet
    per --per-class K); writes probe.csv and metrics.h5.

    Example: duvae classify --labels 100
    """
    from duvae_cli.console import CliReporter
    from duvae_cli.io import results_dir
    from duvae_cli.probe import ClassifyOptions, classify_run, result_json, write_outputs
    from duvae_cli.probe.features import dataset_kind
    from duvae_cli.tracking import add_results, check_trackers
    from duvae_cli.tracking.records import probe_scalars

    check_trackers(log)
    reporter = CliReporter(quiet)
    where = results_dir(run, out)  # a read-only run without --out stops here, before the probes
    if dataset_kind(run) == "image":
        if data:
            raise UsageError("--data: image runs use the per-alphabet protocol on their own dataset")
        if labels or repeats != 1:
            raise UsageError("--labels/--repeats: image runs use the per-alphabet protocol (--per-class)")
        payload = _classify_alphabets(run, per_class, seed, checkpoint, device, reporter, json, where, data_root)
        return add_results(run, log, probe_scalars(payload))
    if per_class:
        raise UsageError("--per-class: only for Omniglot runs (the per-alphabet protocol); use --labels")
    options = ClassifyOptions(budgets=tuple(labels or ()), repeats=repeats, seed=seed,
                              checkpoint=checkpoint, device=device, data_root=data_root)
    if data:
        from duvae_cli.use.newdata import classify_data

        result = classify_data(run, data, options, reporter)
    else:
        result = classify_run(run, options, reporter=reporter)
    files = write_outputs(result, where)
    reporter.log(f"wrote {', '.join(map(str, files))}")
    payload = result_json(result, files)
    _print_probe(payload, json)
    add_results(run, log, probe_scalars(payload))


def _classify_alphabets(run: Path, per_class, seed: int, checkpoint: str, device: str, reporter,
                        as_json: bool, where: Path, data_root: Path | None) -> None:
    from duvae_cli.console import emit_json, print_table
    from duvae_cli.probe.alphabets import AlphabetOptions, classify_alphabets
    from duvae_cli.probe.outputs import alphabet_json, write_alphabet_outputs

    options = AlphabetOptions(per_class=tuple(per_class or (5, 10, 15)), seed=seed, checkpoint=checkpoint,
                              device=device, data_root=data_root)
    result = classify_alphabets(run, options, reporter)
    files = write_alphabet_outputs(result, where)
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
