"""`duvae classify`: linear-probe accuracy of a trained run's representation (reference-spec §6.1).

Features are the eval-mode posterior means ([mu0 ; zT] for a run with an IAF posterior, paper §4.2),
computed once per sentence with the frozen encoder of the chosen checkpoint. For each label budget N and repeat r, a probe is trained on the labelled set (the
official subset N when the dataset has one, else a class-stratified draw of N train sentences with
seed + r), stopped early on the full valid split, and scored on the full test split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from duvae_cli.data import binding
from duvae_cli.options import CHECKPOINT, DATA_ROOT, DEVICE, SEED, Option, options_dataclass
from duvae_cli.probe.features import probe_features, require_text_run
from duvae_cli.probe.linear import ProbeSettings, fit_probe
from duvae_cli.probe.subsets import LabelledSet, check_labelled, labelled_sets, official_budgets
from duvae_cli.progress import SILENT, Reporter, note

ESTIMATOR = "linear_probe"
FEATURES, FLOW_FEATURES = "eval-mode posterior mean", "eval-mode [mu0 ; zT] (posterior mean and its flow)"
DEFAULT_BUDGET = 100


# What `duvae classify` can be asked of a text run (its flags are derived from these; commands/evaluate.py).
CLASSIFY_OPTIONS = (
    Option("budgets", int, (), "Label budget N (repeat the option for several; default: the dataset's "
           "official budgets, else 100).", range="[1, 1000000000]", multiple=True, flags=("--labels",)),
    Option("repeats", int, 1, "Redraw the labelled subsets with R seeds (an official subset is fixed: the "
           "probe is re-run with R seeds); mean and std.", range="[1, 1000]"),
    SEED.but(help="Seed of repeat 0; repeat r uses seed + r."),
    CHECKPOINT,
    DEVICE.but(help="auto, cpu or cuda (for encoding)."),
    DATA_ROOT,
)


@options_dataclass(CLASSIFY_OPTIONS)
class ClassifyOptions:
    """The label budgets (empty: the dataset's official budgets, else 100), repeats and seed of the
    probes, the run's checkpoint and device, and the probe's own settings."""

    settings: ProbeSettings = ProbeSettings()


@dataclass
class ProbeRecord:
    budget: int
    repeat: int
    seed: int
    kind: str  # official | stratified
    n_train: int
    test_accuracy: float
    valid_accuracy: float
    valid_loss: float
    epochs: int
    weight: np.ndarray  # (K, D)
    bias: np.ndarray  # (K,)


@dataclass
class ProbeResult:
    run_dir: Path
    dataset: str
    model: str
    checkpoint: str
    checkpoint_sha256: str
    n_valid: int
    n_test: int
    n_classes: int
    majority_accuracy: float  # test accuracy of always answering the most frequent train class
    options: ClassifyOptions
    records: list[ProbeRecord] = field(default_factory=list)
    split_labels: dict = field(default_factory=lambda: {"test": "test", "valid": "valid"})  # as written
    h5_group: str = "probe"  # metrics.h5 group (new data: probe@<test data label>, use/newdata.py)
    data: dict = field(default_factory=dict)  # new data: role -> {source, label, n, unk_share}
    split_sha256: dict = field(default_factory=dict)  # "train"/"test"/"valid" -> fingerprint (data/binding.py)
    dataset_sha256: str = ""  # the dataset file's sha256
    features: str = FEATURES  # what the probe reads (a flow run: [mu0 ; zT])

    def summary(self) -> list[dict]:
        """One dict per budget: mean and sample std (ddof 1; None for one repeat) of the test accuracy."""
        out = []
        for budget in dict.fromkeys(r.budget for r in self.records):
            rows = [r for r in self.records if r.budget == budget]
            accs = np.array([r.test_accuracy for r in rows])
            out.append({"labels": budget, "subset": rows[0].kind, "n_train": rows[0].n_train,
                        "repeats": len(rows), "accuracy_mean": float(accs.mean()),
                        "accuracy_std": float(accs.std(ddof=1)) if len(rows) > 1 else None,
                        "valid_accuracy_mean": float(np.mean([r.valid_accuracy for r in rows])),
                        "accuracies": accs.tolist()})
        return out


def classify_run(run_dir: Path, options: ClassifyOptions = ClassifyOptions(),
                 reporter: Reporter = SILENT) -> ProbeResult:
    """Train and score the probes of one run (nothing is written; see `probe.outputs`)."""
    from duvae_cli.runtime import as_device
    from duvae_cli.runs.load import load_trained

    require_text_run(Path(run_dir), "duvae classify")
    device = as_device(options.device)
    trained = load_trained(Path(run_dir), options.checkpoint, device=device, data_root=options.data_root)
    for line in trained.data_notes:  # a split changed, data found elsewhere: shown even with -q
        note(reporter, line)
    return classify_trained(trained, options, reporter)


def classify_trained(trained, options: ClassifyOptions = ClassifyOptions(), reporter: Reporter = SILENT,
                     device=None) -> ProbeResult:
    """`classify_run` on a loaded run (`train.run.Trained`), whose dataset may be new data."""
    device = device or next(trained.model.parameters()).device
    dataset = trained.dataset
    check_labelled(dataset, dataset.path)
    budgets = options.budgets or tuple(official_budgets(dataset)) or (DEFAULT_BUDGET,)
    plans = {b: labelled_sets(dataset, b, options.repeats, options.seed) for b in budgets}
    features = _Features(trained.model, dataset, trained.config.eval_batch_size, device)
    result = _empty_result(trained, dataset, options)
    with reporter.task("linear probes", len(budgets) * options.repeats) as task:
        for budget, sets in plans.items():
            for repeat, labelled in enumerate(sets):
                result.records.append(_probe_once(features, labelled, repeat, options, result.n_classes))
                task.advance(1, labels=budget, acc=result.records[-1].test_accuracy)
    return result


def _empty_result(trained, dataset, options: ClassifyOptions) -> ProbeResult:
    splits = dataset.splits
    labels = [s.labels for s in [*splits.values(), *dataset.subsets.values()] if s.labels is not None]
    n_classes = max(dataset.num_labels, int(max(lab.max() for lab in labels)) + 1)
    reference = splits["train"].labels if "train" in splits and splits["train"].labels is not None \
        else splits["valid"].labels
    majority = int(np.bincount(reference).argmax())
    return ProbeResult(trained.run_dir, trained.config.dataset, trained.config.model, trained.checkpoint_name,
                       trained.checkpoint_sha256, len(splits["valid"]), len(splits["test"]), n_classes,
                       float(np.mean(splits["test"].labels == majority)), options,
                       split_sha256={s: binding.fingerprint_of(dataset, s) for s in ("train", "test", "valid")
                                     if s in splits},
                       dataset_sha256=str(getattr(dataset, "sha256", "") or ""),
                       features=FEATURES if getattr(trained.model, "flow", None) is None else FLOW_FEATURES)


def _probe_once(features: "_Features", labelled: LabelledSet, repeat: int, options: ClassifyOptions,
                n_classes: int) -> ProbeRecord:
    seed = options.seed + repeat
    train_x = features.of(labelled.source, labelled.indices)
    valid_x, valid_y = features.split("valid")
    test_x, test_y = features.split("test")
    fit = fit_probe(train_x, labelled.labels, valid_x, valid_y, n_classes, seed, options.settings)
    return ProbeRecord(labelled.budget, repeat, seed, labelled.kind, len(labelled.indices),
                       fit.accuracy(test_x, test_y), fit.accuracy(valid_x, valid_y), fit.valid_loss,
                       fit.epochs, fit.weight, fit.bias)


class _Features:
    """Posterior means, each sentence encoded once: full valid/test splits, official subsets whole,
    and train rows on first use (so a 100-label probe never encodes all of a large train split)."""

    def __init__(self, model, dataset, batch_size: int, device):
        self.model, self.dataset, self.batch_size, self.device = model, dataset, batch_size, device
        self.cache: dict[str, dict[int, np.ndarray]] = {}
        self.whole: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def _split(self, source: str):
        if source.startswith("subsets/"):
            return self.dataset.subsets[source.split("/", 1)[1]]
        return self.dataset.splits[source]

    def of(self, source: str, indices: np.ndarray) -> np.ndarray:
        cache = self.cache.setdefault(source, {})
        missing = np.array(sorted(set(indices.tolist()) - cache.keys()), dtype=np.int64)
        if len(missing):
            features = probe_features(self.model, self._split(source), missing, self.batch_size, self.device)
            cache.update(zip(missing.tolist(), features))
        return np.stack([cache[i] for i in indices.tolist()])

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(features (n, D), labels (n,)) of a whole split."""
        if name not in self.whole:
            split = self.dataset.splits[name]
            self.whole[name] = (self.of(name, np.arange(len(split))), np.asarray(split.labels, dtype=np.int64))
        return self.whole[name]
