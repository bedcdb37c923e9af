"""Labelled training sets for the probe: the dataset's official label-budget subsets when it ships them
(short yelp's `short_yelp.train.{100,...}.txt`, stored as `subsets/<N>`), else seeded class-stratified
draws from the train split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from duvae_cli.errors import DuvaeError, UsageError


@dataclass(frozen=True)
class LabelledSet:
    budget: int  # the number of labels asked for
    kind: str  # "official" (a stored subset) or "stratified" (drawn from train)
    source: str  # "subsets/<N>" or "train": where the sentences live
    indices: np.ndarray  # int64 (n,): rows of that split
    labels: np.ndarray  # int64 (n,)


def official_budgets(dataset) -> list[int]:
    """The label budgets the dataset ships subsets for (numeric subset names with labels), ascending."""
    return sorted(int(name) for name, split in dataset.subsets.items()
                  if name.isdigit() and split.labels is not None)


def has_official(dataset, budget: int) -> bool:
    split = dataset.subsets.get(str(budget))
    return split is not None and split.labels is not None


def official_set(dataset, budget: int) -> LabelledSet:
    split = dataset.subsets[str(budget)]
    return LabelledSet(budget, "official", f"subsets/{budget}", np.arange(len(split.labels)),
                       np.asarray(split.labels, dtype=np.int64))


def stratified_set(labels: np.ndarray, budget: int, rng: np.random.Generator) -> LabelledSet:
    """`budget` train rows drawn without replacement, class by class in proportion to the class sizes
    (largest-remainder rounding), so every draw has the train split's class balance."""
    labels = np.asarray(labels, dtype=np.int64)
    if budget > len(labels):
        raise UsageError(f"--labels {budget}: the train split has only {len(labels)} labelled sentences")
    classes, counts = np.unique(labels, return_counts=True)
    exact = budget * counts / counts.sum()
    quota = np.floor(exact).astype(np.int64)
    shortfall = budget - int(quota.sum())
    quota[np.argsort(-(exact - quota), kind="stable")[:shortfall]] += 1
    picked = [rng.choice(np.flatnonzero(labels == c), size=q, replace=False) for c, q in zip(classes, quota)]
    indices = np.sort(np.concatenate(picked))
    return LabelledSet(budget, "stratified", "train", indices, labels[indices])


def labelled_sets(dataset, budget: int, repeats: int, seed: int) -> list[LabelledSet]:
    """One set per repeat: the official subset every time (it is fixed), or a fresh draw with seed+r."""
    if has_official(dataset, budget):
        return [official_set(dataset, budget)] * repeats
    labels = dataset.splits["train"].labels if "train" in dataset.splits else None
    if labels is None:
        raise DuvaeError(f"--labels {budget}: the dataset has no labelled train split and no "
                         f"official subset of {budget}")
    return [stratified_set(labels, budget, np.random.default_rng(seed + r)) for r in range(repeats)]


def check_labelled(dataset, path: object) -> None:
    """The probe needs labels on valid and test, and on train unless every budget is an official subset."""
    missing = [name for name in ("valid", "test")
               if name not in dataset.splits or dataset.splits[name].labels is None]
    if missing:
        raise DuvaeError(f"{path}: the dataset has no labels on its {' and '.join(missing)} split; "
                         "classification needs a labelled dataset")
