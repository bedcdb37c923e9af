"""The real corpora in ../shared/data give the counts its README states (skipped when absent)."""

from __future__ import annotations

import numpy as np
import pytest

from duvae_cli.data import load_dataset
from duvae_cli.prepare import PrepareOptions, prepare_dataset


@pytest.fixture(scope="module")
def prepared(shared_data, tmp_path_factory):
    """Prepare a dataset from its shared folder once per module; returns (summary, dataset)."""
    out = tmp_path_factory.mktemp("real")
    cache = {}

    def get(name: str, folder: str):
        if name not in cache:
            summary = prepare_dataset(name, PrepareOptions(source=str(shared_data / folder), out=out))
            cache[name] = summary, load_dataset(summary.path)
        return cache[name]

    return get


def sizes(ds) -> dict[str, int]:
    return {name: len(split) for name, split in ds.splits.items()}


def test_ptb(prepared):
    summary, ds = prepared("ptb", "ptb")
    assert sizes(ds) == {"train": 42068, "valid": 3370}
    assert len(ds.splits["train"].tokens) == 887521  # words without </s>
    assert len(ds.vocab) == 4 + 9998  # 10k types = 9,998 words + <unk> + </s>; ours adds <pad> <s>
    assert "no test file: no test split written" in summary.notes


def test_short_yelp(prepared):
    summary, ds = prepared("short-yelp", "short_yelp")
    assert len(ds.vocab) == 8411 and ds.vocab[:4] == ["<pad>", "<s>", "</s>", "<unk>"]
    assert sizes(ds) == {"train": 10000, "valid": 10000, "test": 10000}
    assert {k: len(v) for k, v in ds.subsets.items()} == {str(n): n for n in (100, 500, 1000, 2000, 10000)}
    assert ds.num_labels == 2 and ds.splits["valid"].lengths.max() <= 15


def test_yelp_sentiment(prepared):
    _, ds = prepared("yelp-sentiment", "yelp_sentiment")
    labels = np.concatenate([s.labels for s in ds.splits.values()])
    assert len(labels) == 63483 and np.bincount(labels).tolist() == [25278, 38205]


def test_yahoo(prepared):
    _, ds = prepared("yahoo", "yahoo")
    assert sum(sizes(ds).values()) == 10000 and sizes(ds)["train"] == 8000
    assert "_UNK" not in ds.vocab  # the corpus's OOV marker is our <unk>


def test_mnist(prepared):
    _, ds = prepared("mnist", "binarized_mnist")
    assert sizes(ds) == {"train": 50000, "valid": 10000, "test": 10000}
    assert all(s.binarized and s.labels is None for s in ds.splits.values())


def test_omniglot(prepared):
    summary, ds = prepared("omniglot", "omniglot")
    assert sizes(ds) == {"train": 22345, "valid": 2000, "test": 8115}
    every = {part: np.concatenate([getattr(s, part) for s in ds.splits.values()])
             for part in ("labels", "alphabet", "character")}
    assert len(every["labels"]) == 32460
    assert len(np.unique(every["labels"])) == 1623 and len(np.unique(every["alphabet"])) == 50
    assert np.bincount(np.bincount(every["labels"])).tolist()[-1] == 1623  # 20 images per character
    assert (np.bincount(ds.splits["test"].labels) == 5).all()  # drawers 16-20
    assert summary.sha256 == ds.sha256
