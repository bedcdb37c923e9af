"""Prepared datasets as the library reads them: `load_dataset` reads OUT/<name>/dataset.h5 back;
batching, the run's binding to its data and finding moved data. Building a dataset from raw files
is `duvae_cli.prepare`.

    from duvae_cli.data import dataset_path, load_dataset
    ds = load_dataset(dataset_path("synthetic", "data"))   # TextDataset: ds.vocab, ds.splits["train"]

The file layout is in store.py and docs/formats.md; the datasets and their choices in
docs/datasets.md.
"""

from duvae_cli.data.store import (
    SPECIALS, Dataset, ImageDataset, ImageSplit, TextDataset, TextSplit, dataset_path, load_dataset,
)

__all__ = ["SPECIALS", "Dataset", "ImageDataset", "ImageSplit", "TextDataset", "TextSplit", "dataset_path",
           "load_dataset"]
