"""The dataset.h5 contract (docs/formats.md): what the training code reads, and how it fails."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from duvae_cli import __version__
from duvae_cli.data import dataset_path, load_dataset
from duvae_cli.data.store import Built, SplitData, TextSplit, write_dataset
from duvae_cli.errors import DuvaeError


def text_built() -> Built:
    split = SplitData(arrays={"tokens": np.array([4, 5, 6, 4], dtype=np.int32),
                              "offsets": np.array([0, 3, 4], dtype=np.int64),
                              "labels": np.array([1, 0], dtype=np.int64)})
    return Built(kind="text", splits={"train": split}, subsets={"2": split},
                 vocab=["<pad>", "<s>", "</s>", "<unk>", "a", "b", "ü"], tokenizer="word",
                 sources=[{"file": "x.txt", "sha256": "0" * 64}], num_labels=2)


def test_dataset_path():
    assert str(dataset_path("ptb")) == "data/ptb/dataset.h5"
    assert str(dataset_path("ptb", "/tmp/w")) == "/tmp/w/ptb/dataset.h5"


def test_root_attributes_and_groups_follow_the_layout(tmp_path):
    path = tmp_path / "t" / "dataset.h5"
    write_dataset(path, "t", text_built())
    with h5py.File(path) as f:
        attrs = dict(f.attrs)
        assert attrs["schema_version"] == 1 and attrs["kind"] == "text" and attrs["tokenizer"] == "word"
        assert [attrs[k] for k in ("pad_id", "bos_id", "eos_id", "unk_id")] == [0, 1, 2, 3]
        assert json.loads(attrs["sources"]) == [{"file": "x.txt", "sha256": "0" * 64}]
        assert attrs["num_labels"] == 2 and attrs["duvae_version"] == __version__
        assert f["train/tokens"].dtype == np.int32 and f["train/offsets"].dtype == np.int64
        assert f["vocab"].asstr()[6] == "ü" and "subsets/2/tokens" in f
    assert [p.name for p in path.parent.iterdir()] == ["dataset.h5"]  # no temp file left


def test_round_trip(tmp_path):
    path = tmp_path / "dataset.h5"
    write_dataset(path, "t", text_built())
    ds = load_dataset(path)
    train = ds.splits["train"]
    assert isinstance(train, TextSplit) and len(train) == 2 and list(train.lengths) == [3, 1]
    assert list(train.sentence(0)) == [4, 5, 6] and list(train.labels) == [1, 0]
    assert ds.decode(train.sentence(0)) == "a b ü" and ds.num_labels == 2 and ds.name == "t"
    assert list(ds.subsets) == ["2"] and len(ds.sha256) == 64 and ds.path == path


def test_written_twice_the_bytes_are_identical(tmp_path):
    write_dataset(tmp_path / "a.h5", "t", text_built())
    write_dataset(tmp_path / "b.h5", "t", text_built())
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()


def test_a_failed_write_leaves_nothing(tmp_path):
    built = text_built()
    built.splits["valid"] = SplitData(arrays={"tokens": np.array([object()])})  # h5py cannot store it
    path = tmp_path / "dataset.h5"
    with pytest.raises(TypeError):
        write_dataset(path, "t", built)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("case", ["missing", "not-hdf5", "foreign-hdf5", "future-schema"])
def test_loading_a_bad_file_is_one_line_naming_it(tmp_path, case):
    path = tmp_path / "dataset.h5"
    if case == "not-hdf5":
        path.write_text("hello")
    elif case == "foreign-hdf5":
        with h5py.File(path, "w") as f:
            f["x"] = 1
    elif case == "future-schema":
        write_dataset(path, "t", text_built())
        with h5py.File(path, "a") as f:
            f.attrs["schema_version"] = 99
    with pytest.raises(DuvaeError) as err:
        load_dataset(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
