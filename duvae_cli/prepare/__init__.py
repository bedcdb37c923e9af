"""Preparing datasets: `prepare_dataset` turns raw files into OUT/<name>/dataset.h5 (duvae_cli.data
reads it back).

    from duvae_cli.prepare import PrepareOptions, prepare_dataset
    prepare_dataset("synthetic", PrepareOptions(out=Path("data")))

The datasets and their choices are in docs/datasets.md.
"""

from duvae_cli.prepare.options import PrepareOptions
from duvae_cli.prepare.prepare import PrepareSummary, prepare_dataset
from duvae_cli.prepare.registry import DATASETS, DatasetSpec

__all__ = ["DATASETS", "DatasetSpec", "PrepareOptions", "PrepareSummary", "prepare_dataset"]
