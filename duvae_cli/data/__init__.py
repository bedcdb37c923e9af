"""Prepared datasets: `prepare_dataset` writes OUT/<name>/dataset.h5, `load_dataset` reads it back.

    from duvae_cli.data import dataset_path, load_dataset, prepare_dataset, PrepareOptions
    path = dataset_path("synthetic", "data")
    if not path.exists():
        prepare_dataset("synthetic", PrepareOptions(out=Path("data")))
    ds = load_dataset(path)          # TextDataset: ds.vocab, ds.splits["train"].sentence(0), ...

The file layout is in store.py and docs/formats.md; the datasets and their choices in
docs/datasets.md.
"""

from duvae_cli.data.options import PrepareOptions
from duvae_cli.data.prepare import PrepareSummary, prepare_dataset
from duvae_cli.data.registry import DATASETS, DatasetSpec
from duvae_cli.data.store import (
    SPECIALS, Dataset, ImageDataset, ImageSplit, TextDataset, TextSplit, dataset_path, load_dataset,
)

__all__ = [
    "DATASETS", "DatasetSpec", "Dataset", "ImageDataset", "ImageSplit", "PrepareOptions", "PrepareSummary",
    "SPECIALS", "TextDataset", "TextSplit", "dataset_path", "load_dataset", "prepare_dataset",
]
