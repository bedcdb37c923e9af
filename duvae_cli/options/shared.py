"""The options many commands share (seed, checkpoint, device, a moved run's data root) and the
size parser of `--memory-budget`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from duvae_cli.options.declare import Option

DEFAULT_SEED = 783435  # the reference code's seed: every command's and the training config's default
SEED_RANGE = "[0, 4294967295]"  # 2**32 - 1: every seed numpy's and torch's generators accept

SEED = Option("seed", int, DEFAULT_SEED, "Seed of the command's random draws.", range=SEED_RANGE)
CHECKPOINT = Option("checkpoint", str, "best", "best or last.", choices=("best", "last"))
DEVICE = Option("device", str, "auto", "auto, cpu or cuda.")
DATA_ROOT = Option("data_root", Path, None, "A moved run's data: when the recorded dataset path is gone, use "
                   "DIR/NAME/dataset.h5 if it holds the same data (then the run's data_root, then ./data; "
                   "docs/runs.md).", metavar="DIR")

_SIZES = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def parse_size(value: Any) -> int:
    """'2GB', '500MB', '1.5GiB' or a plain byte count -> bytes (> 0); an int is taken as bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(value))
        unit = match and match.group(2).upper()
        if not match or unit not in _SIZES:
            raise ValueError("expected a size such as 2GB, 500MB or 1.5GiB")
        size = int(float(match.group(1)) * _SIZES[unit])
    if size <= 0:
        raise ValueError("must be > 0")
    return size
