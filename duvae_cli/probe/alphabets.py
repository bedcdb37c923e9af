"""`duvae classify` on Omniglot: one linear probe per alphabet (reference-spec §6.2, the paper's Table 3).

- Features: the probe features of `VAE.features` (eval-mode posterior means; [mu0 ; zT] with an IAF)
  of one fixed binarisation of every image: the train split's grey levels are binarised once with
  a generator seeded by `--seed`; valid and test keep the binarisation stored at prepare time.
- Training drawings: per character, the first k (`--per-class`, 5 / 10 / 15) of its 15 training
  drawings in drawer order. duvae's prepare holds 2,000 of them out as `valid`, so train and valid
  are taken together and put back in (character, drawer) order, recomputed from the seed `prepare`
  recorded (`data.omniglot.pool_positions`). Test: all test drawings (drawers 16-20).
- Per alphabet, Linear(features, characters of the alphabet) with cross-entropy: Adam lr 1e-3,
  shuffled batches of 50 with the loss summed over the batch, 300 epochs, no early stopping; the
  final probe is scored. The reference skips batches of one; here a last batch of one joins the
  previous batch, so every drawing is used.
- Reported per k: the mean accuracy over alphabets (the paper's number) and the character-weighted
  mean (each alphabet weighted by its number of characters).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from duvae_cli.data import binding
from duvae_cli.data.store import ImageSplit
from duvae_cli.errors import DuvaeError
from duvae_cli.options import CHECKPOINT, DATA_ROOT, DEVICE, SEED, Option, options_dataclass
from duvae_cli.probe.features import probe_features
from duvae_cli.probe.linear import _batches, _init, _one_thread
from duvae_cli.progress import SILENT, Reporter, note
from duvae_cli.data.batching import ImageBatches

DRAWINGS_PER_CHARACTER = 15


# What `duvae classify` can be asked of an Omniglot run (the per-alphabet protocol).
ALPHABET_OPTIONS = (
    Option("per_class", int, (5, 10, 15), "Omniglot: train each alphabet's probe on the first K drawings of every "
           "character (repeat the option for several; default 5, 10 and 15).", range=f"[1, {DRAWINGS_PER_CHARACTER}]",
           multiple=True, flags=("--per-class",)),
    SEED.but(help="The binarisation of the train images, the probes' init and batch order."),
    CHECKPOINT,
    DEVICE,
    Option("epochs", int, 300, "Epochs of each alphabet's probe.", range=">= 1", flag=False),
    Option("batch_size", int, 50, "Drawings per batch of the probes.", range=">= 1", flag=False),
    Option("lr", float, 1e-3, "Adam's learning rate of the probes.", range="> 0", flag=False),
    DATA_ROOT,
)


@options_dataclass(ALPHABET_OPTIONS)
class AlphabetOptions:
    """k (training drawings per character) per probe, the seed, the run's checkpoint and device, and
    the probes' schedule (reference-spec §6.2)."""


@dataclass
class AlphabetRecord:
    per_class: int
    alphabet: int  # row of alphabets.csv
    name: str
    n_characters: int
    n_train: int
    n_test: int
    accuracy: float  # test accuracy of the final probe


@dataclass
class AlphabetResult:
    run_dir: Path
    dataset: str
    model: str
    checkpoint: str
    checkpoint_sha256: str
    drawer_order: str  # "recovered" (from the prepare seed) or "approximate" (train before valid)
    options: AlphabetOptions
    records: list[AlphabetRecord] = field(default_factory=list)
    split_sha256: dict = field(default_factory=dict)  # "test" -> fingerprint (data/binding.py)
    dataset_sha256: str = ""  # the dataset file's sha256

    def summary(self) -> list[dict]:
        """Per k: mean accuracy over alphabets and the character-weighted mean."""
        out = []
        for k in dict.fromkeys(r.per_class for r in self.records):
            rows = [r for r in self.records if r.per_class == k]
            acc, chars = np.array([r.accuracy for r in rows]), np.array([r.n_characters for r in rows])
            out.append({"per_class": k, "alphabets": len(rows), "accuracy_mean": float(acc.mean()),
                        "accuracy_char_weighted": float((acc * chars).sum() / chars.sum()),
                        "n_train": int(sum(r.n_train for r in rows)), "n_test": int(sum(r.n_test for r in rows))})
        return out


@dataclass
class Pool:
    """The labelled images of one role (train pool or test) with their features."""

    features: np.ndarray  # (N, F)
    alphabet: np.ndarray  # (N,)
    character: np.ndarray  # (N,) index within the alphabet
    rank: np.ndarray  # (N,) drawing's rank within its character (train pool: drawer order)


def train_pool(dataset, seed: int) -> tuple[ImageSplit, str]:
    """Train + valid as one binarised split in (character, drawer) order, and how the order was found."""
    from duvae_cli.prepare.omniglot import pool_positions

    train, valid = dataset.splits["train"], dataset.splits["valid"]
    pick = lambda key: np.concatenate([getattr(train, key), getattr(valid, key)])  # noqa: E731
    alphabet, character = pick("alphabet"), pick("character")
    positions = pool_positions(dataset)
    if positions is not None:
        order, how = np.argsort(np.concatenate(positions), kind="stable"), "recovered"
    else:  # unknown recipe: within a character, train drawings first, then valid ones
        order, how = np.lexsort((character, alphabet)), "approximate"
    images = np.concatenate([ImageBatches(train, seed).fixed_binarisation(), valid.images])
    labels = None if train.labels is None or valid.labels is None else pick("labels")[order]
    return ImageSplit(images[order], True, labels, alphabet[order], character[order]), how


def rank_within(alphabet: np.ndarray, character: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... along each character's drawings, which must be consecutive (the pool's order)."""
    new = np.r_[True, (alphabet[1:] != alphabet[:-1]) | (character[1:] != character[:-1])]
    starts = np.flatnonzero(new)
    return np.arange(len(alphabet)) - np.repeat(starts, np.diff(np.r_[starts, len(alphabet)]))


def check_alphabets(dataset) -> None:
    splits = dataset.splits
    if any(name not in splits for name in ("train", "valid", "test")):
        raise DuvaeError(f"{dataset.path}: classification needs train, valid and test splits")
    if all(splits[name].labels is None for name in ("train", "valid", "test")):
        raise DuvaeError(f"{dataset.name} has no labels: nothing to classify")
    if any(splits[name].alphabet is None or splits[name].character is None for name in splits):
        raise DuvaeError(f"{dataset.path}: the per-alphabet probe needs alphabet and character arrays "
                         "(Omniglot)")


def fit_alphabet(train_x, train_y, n_classes: int, seed: int, options: AlphabetOptions) -> nn.Linear:
    """Linear probe trained for a fixed number of epochs: Adam, summed loss, shuffled batches."""
    generator = torch.Generator().manual_seed(seed)
    x, y = torch.as_tensor(train_x, dtype=torch.float32), torch.as_tensor(train_y, dtype=torch.long)
    layer = nn.Linear(x.shape[1], n_classes)
    _init(layer, generator)
    optimizer = torch.optim.Adam(layer.parameters(), lr=options.lr)
    for _ in range(options.epochs):
        for rows in _batches(len(x), options.batch_size, generator):
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(layer(x[rows]), y[rows], reduction="sum").backward()
            optimizer.step()
    return layer


@torch.no_grad()
def _accuracy(layer: nn.Linear, x: np.ndarray, y: np.ndarray) -> float:
    predicted = layer(torch.as_tensor(x, dtype=torch.float32)).argmax(1).numpy()
    return float(np.mean(predicted == y))


def probe_alphabets(train: Pool, test: Pool, k: int, names: list[str], options: AlphabetOptions,
                    task=None) -> list[AlphabetRecord]:
    """One probe per alphabet present in `test`, trained on the first k drawings of each character."""
    records = []
    with _one_thread():
        for alphabet in np.unique(test.alphabet):
            chosen = (train.alphabet == alphabet) & (train.rank < k)
            in_test = test.alphabet == alphabet
            n_chars = int(max(train.character[train.alphabet == alphabet].max(initial=-1),
                              test.character[in_test].max()) + 1)
            layer = fit_alphabet(train.features[chosen], train.character[chosen], n_chars,
                                 options.seed + int(alphabet), options)
            accuracy = _accuracy(layer, test.features[in_test], test.character[in_test])
            name = names[alphabet] if alphabet < len(names) else str(alphabet)
            records.append(AlphabetRecord(k, int(alphabet), name, n_chars, int(chosen.sum()),
                                          int(in_test.sum()), accuracy))
            if task is not None:
                task.advance(1, k=k, acc=accuracy)
    return records


def classify_alphabets(run_dir: Path, options: AlphabetOptions = AlphabetOptions(),
                       reporter: Reporter = SILENT) -> AlphabetResult:
    """Encode every image once, then train and score the per-alphabet probes for every k."""
    from duvae_cli.runtime import as_device
    from duvae_cli.runs.load import load_trained

    device = as_device(options.device)
    trained = load_trained(Path(run_dir), options.checkpoint, device=device, data_root=options.data_root)
    for line in trained.data_notes:  # a split changed, data found elsewhere: shown even with -q
        note(reporter, line)
    dataset = trained.dataset
    check_alphabets(dataset)
    pool, how = train_pool(dataset, options.seed)
    test = dataset.splits["test"]
    batch = trained.config.eval_batch_size
    with reporter.task("encoding images", len(pool) + len(test)) as task:
        train_x = probe_features(trained.model, pool, None, batch, device)
        task.advance(len(pool))
        test_x = probe_features(trained.model, test, None, batch, device)
        task.advance(len(test))
    train = Pool(train_x, pool.alphabet, pool.character, rank_within(pool.alphabet, pool.character))
    test_pool = Pool(test_x, test.alphabet, test.character, np.zeros(len(test), dtype=np.int64))
    names = json.loads(dataset.attrs.get("alphabets", "[]"))
    result = AlphabetResult(trained.run_dir, trained.config.dataset, trained.config.model,
                            trained.checkpoint_name, trained.checkpoint_sha256, how, options,
                            split_sha256={"test": binding.fingerprint_of(dataset, "test")},
                            dataset_sha256=str(getattr(dataset, "sha256", "") or ""))
    total = len(options.per_class) * len(np.unique(test.alphabet))
    with reporter.task("per-alphabet probes", total) as task:
        for k in options.per_class:
            result.records += probe_alphabets(train, test_pool, k, names, options, task)
    return result
