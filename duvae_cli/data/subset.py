"""`--train-examples N`: the first N examples of a split, in the file's order (no shuffling, so the
same N gives the same examples on every machine and after `--resume`)."""

from __future__ import annotations

import dataclasses

from duvae_cli.errors import UsageError
from duvae_cli.data.store import ImageSplit, TextSplit

PER_EXAMPLE = ("labels", "z", "alphabet", "character")  # per-example arrays beside the data itself


def first_examples(split, n: int):
    """The first `n` examples of a text or image split; the split itself when `n` is 0. More than the
    split holds is a usage error naming the option."""
    if n == 0:
        return split
    if n > len(split):
        raise UsageError(f"--train-examples {n}: the train split has only {len(split):,} examples")
    fields = {name: getattr(split, name)[:n] for name in PER_EXAMPLE
              if getattr(split, name, None) is not None}
    if isinstance(split, TextSplit):
        end = int(split.offsets[n])
        return dataclasses.replace(split, tokens=split.tokens[:end], offsets=split.offsets[: n + 1], **fields)
    if isinstance(split, ImageSplit):
        return dataclasses.replace(split, images=split.images[:n], **fields)
    raise TypeError(f"--train-examples: cannot take examples of a {type(split).__name__}")
