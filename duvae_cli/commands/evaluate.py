"""`duvae evaluate` and `duvae classify`: numbers of a trained run."""

from __future__ import annotations

from pathlib import Path

import typer

from duvae_cli.commands.common import JSON, LATEST, QUIET, RESULTS_OUT, RunArg, command, join_torchrun
from duvae_cli.errors import UsageError
from duvae_cli.metrics.evaluate import EVAL_OPTIONS
from duvae_cli.options import CHECKPOINT, DATA_ROOT, DEVICE, Option
from duvae_cli.probe.alphabets import ALPHABET_OPTIONS
from duvae_cli.probe.classify import CLASSIFY_OPTIONS
from duvae_cli.tracking import LOG
from duvae_cli.use.familiar import INPUT_CHECKS, InputChecks
from duvae_cli.use.predict import PREDICT, PROBES

EVAL_SPLIT = Option("split", str, "test", "Split to evaluate (train, valid or test).")
EVAL_WHERE = (
    CHECKPOINT, DEVICE,
    Option("data", Path, None, "Evaluate this data instead (text file, dataset.h5 + --split, or .npz), tokenized with "
           "the run's vocabulary; written under the split name NAME@FINGERPRINT (docs/use.md).", metavar="FILE"),
    RESULTS_OUT, DATA_ROOT,
)
CLASSIFY_DATA = Option("data", str, (), "Probe new labelled data (repeat the option): FILE=LABEL (one class per "
                       "file), labelled FILEs (LABEL<TAB> lines; - for stdin), split here into train/valid/test; or "
                       "train=FILE valid=FILE test=FILE; or one dataset.h5. Default budget: all its train examples "
                       "(docs/use.md).", multiple=True, metavar="SPEC")
CLASSIFY_OUT = RESULTS_OUT.but(help="Write the results and the saved probes into this folder instead of the run "
                               "directory (a read-only run, an export); with --predict: the predictions file.",
                               metavar="PATH")


@command((EVAL_SPLIT,), EVAL_OPTIONS, EVAL_WHERE, INPUT_CHECKS, (LOG, QUIET, JSON))
def evaluate(run: RunArg = LATEST, **values) -> None:
    """IW-NLL, PPL, ELBO, KL, MI, AU, MPD and CE of a trained run; writes metrics.h5 and metrics.csv.

    Example: duvae evaluate runs/latest --iw-samples 500 --split test
    """
    from duvae_cli.console import CliReporter, emit_json, print_table
    from duvae_cli.metrics import EvalOptions, evaluate_run
    from duvae_cli.tracking import check_trackers

    check_trackers(values["log"])  # a missing package fails before the evaluation, not after
    _no_log_into_export(run, values["log"])
    here = join_torchrun()  # a world of one outside torchrun; only rank 0 prints
    reporter = CliReporter(values["quiet"] or not here.is_main, notes=here.is_main)
    options, data, split = EvalOptions.from_flags(values), values["data"], values["split"]
    where = dict(out=values["out"], data_root=values["data_root"])
    if data is not None:  # new data: one process (use/newdata.py)
        from duvae_cli.use.newdata import evaluate_data

        report = evaluate_data(run, data, None if split == "test" and data.suffix != ".h5" else split,
                               values["checkpoint"], options, values["device"], reporter, **where,
                               checks=InputChecks.from_flags(values))
    else:  # sharded under torchrun
        report = evaluate_run(run, split, values["checkpoint"], options, values["device"], reporter, **where)
    if not here.is_main:
        return
    reporter.log(f"wrote {report.files['metrics_h5']} ({report.files['group']}) and {report.files['metrics_csv']}")
    if values["json"]:
        emit_json(report.to_dict())
    else:
        print_table(report.title(), ["metric", "value", "estimator"], report.rows())
    if values["log"]:
        from duvae_cli.tracking import add_results
        from duvae_cli.tracking.records import evaluation_scalars

        add_results(run, values["log"], evaluation_scalars(report))


@command(CLASSIFY_OPTIONS, ALPHABET_OPTIONS, (CLASSIFY_DATA, PREDICT, PROBES, CLASSIFY_OUT), INPUT_CHECKS,
         (LOG, QUIET, JSON))
def classify(run: RunArg = LATEST, **values) -> None:
    """Linear-probe accuracy of the posterior means per label budget (Omniglot: one probe per alphabet
    per --per-class K); writes probe.csv and metrics.h5 and saves the probes; --predict applies one.

    Example: duvae classify --labels 100
    """
    from duvae_cli.console import CliReporter
    from duvae_cli.probe.features import dataset_kind
    from duvae_cli.runs.layout import results_dir
    from duvae_cli.tracking import add_results, check_trackers
    from duvae_cli.tracking.records import probe_scalars

    reporter = CliReporter(values["quiet"])
    if values["predict"] is not None:
        return _predict(run, values, reporter)
    check_trackers(values["log"])
    _no_log_into_export(run, values["log"])
    where = results_dir(run, values["out"])  # a read-only run without --out stops here, before the probes
    if dataset_kind(run) == "image" and not values["data"]:
        if values["budgets"] or values["repeats"] != 1:
            raise UsageError("--labels/--repeats: image runs use the per-alphabet protocol on their own data "
                             "(--per-class); label budgets are for --data")
        payload = _classify_alphabets(run, values, reporter, where)
        return add_results(run, values["log"], probe_scalars(payload))
    if values["per_class"]:
        raise UsageError("--per-class: only for Omniglot runs (the per-alphabet protocol); use --labels")
    payload = _classify_budgets(run, values, reporter, where)
    _print_probe(payload, values["json"])
    add_results(run, values["log"], probe_scalars(payload))


def _classify_budgets(run: Path, values: dict, reporter, where: Path) -> dict:
    """Label-budget probes on the run's own data or on --data; results written, probes saved."""
    from duvae_cli.probe import ClassifyOptions, classify_run, result_json, write_outputs
    from duvae_cli.probe.saved import save_probes

    options = ClassifyOptions.from_flags(values)
    if values["data"]:
        from duvae_cli.use.newdata import classify_data

        result = classify_data(run, values["data"], options, reporter, InputChecks.from_flags(values))
    else:
        result = classify_run(run, options, reporter=reporter)
    files = write_outputs(result, where)
    probes = save_probes(result, where)
    reporter.log(f"wrote {', '.join(map(str, files))}; saved probes in {where / 'probes'}")
    payload = result_json(result, files)
    payload["probes"] = [str(p) for p in probes if p.suffix == ".json"]
    if result.data:
        payload["data"] = result.data
    return payload


def _predict(run: Path, values: dict, reporter) -> None:
    """`--predict FILE`: the saved probe of --labels (or the only one) on new data."""
    from duvae_cli.console import emit_json
    from duvae_cli.probe import ClassifyOptions
    from duvae_cli.use.predict import predict_file

    if values["data"] or values["log"] or len(values["budgets"] or ()) > 1:
        raise UsageError("--predict: takes at most one --labels N, and no --data or --log")
    out = values["out"]
    if out is not None and out.is_dir():
        raise UsageError(f"--out {out}: a folder; with --predict, --out names the predictions file")
    budget = values["budgets"][0] if values["budgets"] else None
    summary = predict_file(run, values["predict"], budget, ClassifyOptions.from_flags(values),
                           InputChecks.from_flags(values), reporter, out, values["probes"],
                           as_json=values["json"] and out is None)
    if out is not None:
        emit_json(summary) if values["json"] else typer.echo(str(out))


def _no_log_into_export(run: Path, log) -> None:
    from duvae_cli.runs.layout import is_export

    if log and is_export(run):  # the trackers write into the run's folder
        raise UsageError(f"--log: {run} is an export, which stays as its author made it; log the run itself")


def _classify_alphabets(run: Path, values: dict, reporter, where: Path) -> dict:
    from duvae_cli.console import emit_json, print_table
    from duvae_cli.probe.alphabets import AlphabetOptions, classify_alphabets
    from duvae_cli.probe.outputs import alphabet_json, write_alphabet_outputs

    result = classify_alphabets(run, AlphabetOptions.from_flags(values), reporter)
    files = write_alphabet_outputs(result, where)
    reporter.log(f"wrote {', '.join(map(str, files))}")
    payload = alphabet_json(result, files)
    if values["json"]:
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
