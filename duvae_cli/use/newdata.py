"""`duvae evaluate RUN --data INPUT` and `duvae classify RUN --data ...`: a run's metrics and probes
on data it was not trained with, written next to its own splits.

New data is named by its label `NAME@FINGERPRINT[:12]` (`inputs.InputData.label`), used where a
split name goes: the metrics.h5 group `<label>/<checkpoint>-<sha>`, the `split` column of
metrics.csv and probe.csv, so `duvae report RUN --split <label>` tables it like a split. The
fingerprint (`inputs.fingerprint`) is of the token ids, so re-running on the same data replaces its
rows, and the same sentences from another file land on the same label.

Classification needs labelled train, valid and test data: three LABEL<TAB> text files
(`train=FILE valid=FILE test=FILE`), one labelled dataset.h5 (its splits and official subsets), or a
pool of labelled files (`FILE=LABEL`, LABEL<TAB> files, `-`) split here (labelled.py). Test accuracies are written under the test data's label, valid ones under the valid data's; the
train data's label is recorded in the metrics.h5 group `probe@<test label>`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from duvae_cli.errors import UsageError
from duvae_cli.progress import SILENT
from duvae_cli.use.familiar import InputChecks, check_input
from duvae_cli.use.inputs import InputData, read_input


def bind(trained, splits: dict, fingerprint: str, subsets: dict | None = None):
    """A copy of `trained` (train.run.Trained) whose dataset holds `splits` instead of its own: the
    run's tokenizer and attributes, the new data's fingerprint in place of the file's sha256."""
    dataset = dataclasses.replace(trained.dataset, splits=splits, subsets=subsets or {}, sha256=fingerprint)
    return dataclasses.replace(trained, dataset=dataset)


def evaluate_data(run_dir: Path, data_path: Path, split: str | None, checkpoint: str, options,
                  device: str = "auto", reporter=SILENT, name: str | None = None, out: Path | None = None,
                  data_root: Path | None = None, checks: InputChecks = InputChecks()):
    """Evaluate INPUT as `duvae evaluate` evaluates a split; returns the EvalReport (files written,
    into `out` when given; `identity["familiarity"]`: the familiarity report of text, use/familiar.py)."""
    from duvae_cli.runs.layout import results_dir
    from duvae_cli.metrics.report import evaluate_trained
    from duvae_cli.runtime import as_device
    from duvae_cli.runs.load import load_trained

    if checkpoint not in ("best", "last"):
        raise UsageError(f"--checkpoint {checkpoint!r}: choose best or last")
    results_dir(Path(run_dir), out)  # a read-only run without --out stops before any work
    trained = load_trained(Path(run_dir), checkpoint, device=as_device(device), data_root=data_root,
                           needs_data=False)  # an export: its vocabulary is enough
    data = read_input(data_path, trained.dataset, split, name)
    familiar = log_input(data, reporter, trained, checks)
    report = evaluate_trained(bind(trained, {data.label: data.split}, data.fingerprint), data.label,
                              options, reporter, out=out)
    report.identity["data"] = data.source
    if familiar is not None:
        report.identity["familiarity"] = familiar
    return report


def log_input(data: InputData, reporter, trained, checks: InputChecks = InputChecks()) -> dict | None:
    """What was read, on stderr: for text the familiarity note (unknown words, lengths; use/familiar.py),
    its warnings and, per `checks`, a refusal before any work; the label results go under. Returns the
    familiarity report for --json (None for images)."""
    if data.kind != "text":
        reporter.log(f"{data.source}: {len(data)} images; label {data.label}")
        return None
    report = check_input(data, trained, checks, reporter)
    reporter.log(f"{data.source}: label {data.label}")
    return report


def classify_data(run_dir: Path, specs: list[str], options, reporter=SILENT, checks: InputChecks = InputChecks()):
    """Train and score the probes of `duvae classify` on new labelled data (labelled.py: a dataset.h5,
    train/valid/test files, or a pool of FILE=LABEL files split here); returns the ProbeResult
    (written by `probe.write_outputs`, which names it by `result.split_labels` and `h5_group`)."""
    from duvae_cli.probe.classify import classify_trained
    from duvae_cli.runtime import as_device
    from duvae_cli.runs.load import load_trained
    from duvae_cli.use.labelled import read_labelled

    device = as_device(options.device)
    trained = load_trained(Path(run_dir), options.checkpoint, device=device, data_root=options.data_root,
                           needs_data=False)
    splits, subsets = read_labelled(specs, trained.dataset, options.seed)
    familiar = {role: log_input(data, reporter, trained, checks) for role, data in splits.items()}
    fingerprint = splits["test"].fingerprint
    if not options.budgets and not subsets:  # default: every labelled train example
        options = dataclasses.replace(options, budgets=(len(splits["train"]),))
    bound = bind(trained, {k: v.split for k, v in splits.items()}, fingerprint,
                 {k: v.split for k, v in subsets.items()})
    result = classify_trained(bound, options, reporter, device)
    result.split_labels = {"test": splits["test"].label, "valid": splits["valid"].label}
    result.h5_group = f"probe@{splits['test'].label}"
    result.data = {role: {"source": d.source, "label": d.label, "fingerprint": d.fingerprint, "n": len(d),
                          "unk_share": d.unk_share, **({"familiarity": familiar[role]} if familiar[role] else {})}
                   for role, d in splits.items()}
    return result
