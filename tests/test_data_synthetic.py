"""The synthetic corpus follows design.md §2 and is the same, byte for byte, every time."""

from __future__ import annotations

import hashlib
import functools

import numpy as np
import pytest

from duvae_cli.data import load_dataset
from duvae_cli.prepare import PrepareOptions, prepare_dataset
from duvae_cli.prepare import synthetic
from duvae_cli.prepare.synthetic import MEANS, SyntheticConfig, generate

# sha256 of (tokens int64, labels int64, z float32) of the default generator: pins the data itself
# across machines and numpy versions (file bytes also depend on the HDF5 library).
GOLDEN = "d4ca5c05403fdf26e3180088fc81b5bd52b7710187d7b2b86758747608245dde"


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    summary = prepare_dataset("synthetic", PrepareOptions(out=out))
    return summary, load_dataset(summary.path)


def test_shape_of_the_corpus(full):
    _, ds = full
    assert [len(ds.splits[s]) for s in ("train", "valid", "test")] == [16000, 2000, 2000]
    assert len(ds.vocab) == 1004 and ds.vocab[4:7] == ["0", "1", "2"] and ds.vocab[-1] == "999"
    for split in ds.splits.values():
        assert (split.lengths == 10).all() and split.tokens.min() >= 4  # words only, no specials
        assert split.z.dtype == np.float32 and split.z.shape == (len(split), 2)
    assert ds.num_labels == 5 and len(np.unique(ds.splits["train"].tokens)) == 1000


def test_latent_mixture_matches_the_spec(full):
    _, ds = full
    z = np.concatenate([s.z for s in ds.splits.values()])
    labels = np.concatenate([s.labels for s in ds.splits.values()])
    counts = np.bincount(labels, minlength=5)
    assert counts.sum() == 20000 and (abs(counts - 4000) < 4 * np.sqrt(4000)).all()  # equal weights
    for k, mean in enumerate(MEANS):
        assert np.allclose(z[labels == k].mean(axis=0), mean, atol=0.05)
        assert np.allclose(z[labels == k].std(axis=0), 0.5, atol=0.03)


def test_sentences_depend_on_the_component(full):
    """The data is only useful if z shapes the text: unigram distributions differ between components."""
    _, ds = full
    train = ds.splits["train"]
    words = train.tokens.reshape(-1, 10)[:, 1:]  # the first token is uniform by design
    dists = [np.bincount(words[train.labels == k].ravel(), minlength=1004) / words[train.labels == k].size
             for k in range(5)]
    total_variation = [0.5 * np.abs(dists[a] - dists[b]).sum() for a in range(5) for b in range(a + 1, 5)]
    assert min(total_variation) > 0.3


def test_generator_output_is_pinned(full):
    _, ds = full
    digest = hashlib.sha256()
    for part in ("tokens", "labels", "z"):
        arrays = [getattr(ds.splits[s], part) for s in ("train", "valid", "test")]
        if part == "tokens":
            arrays = [a.astype(np.int64) - 4 for a in arrays]
        digest.update(np.concatenate(arrays).tobytes())
    assert digest.hexdigest() == GOLDEN


def test_two_runs_give_byte_identical_files(tmp_path, monkeypatch):
    small = functools.partial(SyntheticConfig, sizes=(300, 50, 50))
    monkeypatch.setattr(synthetic, "SyntheticConfig", small)
    first = prepare_dataset("synthetic", PrepareOptions(out=tmp_path / "a"))
    second = prepare_dataset("synthetic", PrepareOptions(out=tmp_path / "b"))
    assert first.sha256 == second.sha256
    assert first.path.read_bytes() == second.path.read_bytes()


@pytest.mark.slow
def test_two_full_runs_give_byte_identical_files(tmp_path, full):
    summary, _ = full
    again = prepare_dataset("synthetic", PrepareOptions(out=tmp_path))
    assert again.sha256 == summary.sha256


def test_seed_changes_the_data():
    a = generate(SyntheticConfig(seed=1, sizes=(20, 0, 0)))[0]
    b = generate(SyntheticConfig(seed=2, sizes=(20, 0, 0)))[0]
    assert not np.array_equal(a, b)
