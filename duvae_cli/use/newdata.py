"""`duvae evaluate RUN --data INPUT` and `duvae classify RUN --data ...`: a run's metrics and probes
on data it was not trained with, written next to its own splits.

New data is named by its label `NAME@FINGERPRINT[:12]` (`inputs.InputData.label`), used where a
split name goes: the metrics.h5 group `<label>/<checkpoint>-<sha>`, the `split` column of
metrics.csv and probe.csv, so `duvae report RUN --split <label>` tables it like a split. The
fingerprint (`inputs.fingerprint`) is of the token ids, so re-running on the same data replaces its
rows, and the same sentences from another file land on the same label.

Classification needs labelled train, valid and test data: three LABEL<TAB> text files
(`train=FILE valid=FILE test=FILE`) or one labelled dataset.h5 (its splits and official subsets).
Test accuracies are written under the test data's label, valid ones under the valid data's; the
train data's label is recorded in the metrics.h5 group `probe@<test label>`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from duvae_cli.data.store import SPLITS, load_dataset
from duvae_cli.errors import DuvaeError, UsageError
from duvae_cli.progress import SILENT
from duvae_cli.use.inputs import InputData, convert_split, read_input


def bind(trained, splits: dict, fingerprint: str, subsets: dict | None = None):
    """A copy of `trained` (train.run.Trained) whose dataset holds `splits` instead of its own: the
    run's tokenizer and attributes, the new data's fingerprint in place of the file's sha256."""
    dataset = dataclasses.replace(trained.dataset, splits=splits, subsets=subsets or {}, sha256=fingerprint)
    return dataclasses.replace(trained, dataset=dataset)


def evaluate_data(run_dir: Path, data_path: Path, split: str | None, checkpoint: str, options,
                  device: str = "auto", reporter=SILENT, name: str | None = None, out: Path | None = None,
                  data_root: Path | None = None):
    """Evaluate INPUT as `duvae evaluate` evaluates a split; returns the EvalReport (files written,
    into `out` when given)."""
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
    log_input(data, reporter)
    report = evaluate_trained(bind(trained, {data.label: data.split}, data.fingerprint), data.label,
                              options, reporter, out=out)
    report.identity["data"] = data.source
    return report


def log_input(data: InputData, reporter) -> None:
    """One stderr line about what was read: examples, and for text the share of <unk> ids."""
    if data.kind == "text":
        reporter.log(f"{data.source}: {len(data)} sentences, {data.n_tokens} tokens, {data.n_unk} <unk> "
                     f"({100 * data.unk_share:.2f}%); label {data.label}")
    else:
        reporter.log(f"{data.source}: {len(data)} images; label {data.label}")


def parse_data_specs(specs: list[str]) -> dict[str, Path] | Path:
    """`--data` values of classify: one dataset.h5, or train=FILE valid=FILE test=FILE."""
    if len(specs) == 1 and "=" not in specs[0]:
        return Path(specs[0])
    files: dict[str, Path] = {}
    for spec in specs:
        role, sep, path = spec.partition("=")
        if not sep or role not in SPLITS or not path:
            raise UsageError(f"--data {spec!r}: give one labelled dataset.h5, or train=FILE, valid=FILE and "
                             "test=FILE (LABEL<TAB>sentence lines)")
        if role in files:
            raise UsageError(f"--data {role}=...: given twice")
        files[role] = Path(path)
    missing = [role for role in SPLITS if role not in files]
    if missing:
        raise UsageError(f"--data: missing {', '.join(f'{m}=FILE' for m in missing)} (the probe trains on "
                         "train, stops early on valid and is scored on test)")
    return files


def read_labelled(specs: list[str], dataset) -> tuple[dict[str, InputData], dict[str, InputData]]:
    """(splits, subsets) of labelled new data, tokenized with the run's tokenizer."""
    parsed = parse_data_specs(specs)
    if isinstance(parsed, dict):
        splits, subsets = {role: read_input(path, dataset) for role, path in parsed.items()}, {}
    else:
        other = load_dataset(parsed)
        missing = [s for s in SPLITS if s not in other.splits]
        if missing:
            raise DuvaeError(f"{parsed}: no {', '.join(missing)} split; the probe needs train, valid and test")
        splits = {s: convert_split(other, other.splits[s], dataset, f"{other.name}-{s}", f"{parsed} ({s})")
                  for s in SPLITS}
        subsets = {k: convert_split(other, v, dataset, f"{other.name}-{k}", f"{parsed} (subsets/{k})")
                   for k, v in other.subsets.items()}
    for role, data in splits.items():
        if data.split.labels is None:
            raise DuvaeError(f"{data.source}: no labels; the {role} data must be LABEL<TAB>sentence lines")
    return splits, subsets


def classify_data(run_dir: Path, specs: list[str], options, reporter=SILENT):
    """Train and score the probes of `duvae classify` on new labelled data; returns the ProbeResult
    (written by `probe.write_outputs`, which names it by `result.split_labels` and `h5_group`)."""
    from duvae_cli.probe.classify import classify_trained
    from duvae_cli.probe.features import require_text_run
    from duvae_cli.runtime import as_device
    from duvae_cli.runs.load import load_trained

    require_text_run(Path(run_dir), "duvae classify --data")
    device = as_device(options.device)
    trained = load_trained(Path(run_dir), options.checkpoint, device=device, data_root=options.data_root,
                           needs_data=False)
    splits, subsets = read_labelled(specs, trained.dataset)
    for data in splits.values():
        log_input(data, reporter)
    fingerprint = splits["test"].fingerprint
    if not options.budgets and not subsets:  # default: every labelled train example
        options = dataclasses.replace(options, budgets=(len(splits["train"]),))
    bound = bind(trained, {k: v.split for k, v in splits.items()}, fingerprint,
                 {k: v.split for k, v in subsets.items()})
    result = classify_trained(bound, options, reporter, device)
    result.split_labels = {"test": splits["test"].label, "valid": splits["valid"].label}
    result.h5_group = f"probe@{splits['test'].label}"
    result.data = {role: {"source": d.source, "label": d.label, "n": len(d), "unk_share": d.unk_share}
                   for role, d in splits.items()}
    return result

