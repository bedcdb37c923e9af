"""What `duvae prepare` can be asked: one frozen options record, with its checks."""

from __future__ import annotations

import math
import re
from pathlib import Path

from duvae_cli.errors import UsageError
from duvae_cli.options import SEED, Option, options_dataclass

TOKENIZERS = ("word", "sentencepiece")
DEFAULT_SENTENCEPIECE_SIZE = 8000
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

# What `duvae prepare` can be asked (its flags are derived from these; commands/prepare.py).
PREPARE_OPTIONS = (
    Option("source", str, None, "Folder, file or URL (http, https, file; a URL ending in / is a folder) with the raw "
           "data (default: the local copy, else the registry's canonical URLs)."),
    Option("out", Path, Path("data"), "Workspace; writes OUT/NAME/dataset.h5."),
    Option("as_name", str, None, "Output name instead of NAME (e.g. for your own `text` corpus).", flags=("--as",)),
    Option("tokenizer", str, "word", "word or sentencepiece.", choices=TOKENIZERS),
    Option("vocab_size", int, None, "Vocabulary size, the 4 special tokens included (at least 5): keep the most "
           f"frequent train words (sentencepiece: model size, default {DEFAULT_SENTENCEPIECE_SIZE}).", range=">= 5"),
    Option("vocab", Path, None, "Impose this vocabulary file (one token a line, <pad> <s> </s> <unk> first)."),
    Option("min_freq", int, 1, "Drop words seen fewer times in train.", range=">= 1"),
    Option("max_length", int, None, "Drop sentences with more tokens.", range=">= 1"),
    Option("train", Path, None, "text: the train file (alone: carved by --split)."),
    Option("valid", Path, None, "text: the valid file."),
    Option("test", Path, None, "text: the test file."),
    Option("split", str, "0.8,0.1,0.1", "Fractions train,valid,test when one file is carved."),
    SEED.but(help="Seed for splits, binarisation and generated data."),
    Option("force", bool, False, "Replace an existing prepared dataset.", flags=("--force/--no-force",)),
)


@options_dataclass(PREPARE_OPTIONS)
class PrepareOptions:
    """Mirrors the `duvae prepare` flags; the defaults are the CLI's defaults. Construction checks each
    value and the rules between them; `check_options` those that depend on the dataset."""

    def fractions(self) -> tuple[float, float, float]:
        return parse_split(self.split)

    def check(self) -> None:
        if self.tokenizer == "sentencepiece" and (self.vocab is not None or self.min_freq != 1):
            raise UsageError("--vocab and --min-freq apply to --tokenizer word only")
        if self.vocab is not None and self.vocab_size is not None:
            raise UsageError("--vocab imposes a vocabulary; it cannot be combined with --vocab-size")
        if self.as_name is not None and not _NAME.match(self.as_name):
            raise UsageError(f"--as {self.as_name!r}: use letters, digits, '.', '_' or '-' only")
        self.fractions()


def parse_split(text: str) -> tuple[float, float, float]:
    """'0.8,0.1,0.1' -> (0.8, 0.1, 0.1); three non-negative fractions summing to 1, train > 0."""
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError:
        parts = ()
    finite = all(math.isfinite(p) for p in parts)  # nan compares false with everything: check it first
    if len(parts) != 3 or not finite or min(parts) < 0 or parts[0] <= 0 or abs(sum(parts) - 1) > 1e-6:
        raise UsageError(f"--split {text!r}: expected three fractions train,valid,test that sum to 1, "
                         "e.g. 0.8,0.1,0.1")
    return parts  # type: ignore[return-value]


def check_options(options: PrepareOptions, kind: str, name: str) -> None:
    """Reject flags that do not apply to this dataset (exit 2)."""
    text_flags = {"--tokenizer": options.tokenizer != "word", "--vocab-size": options.vocab_size is not None,
                  "--vocab": options.vocab is not None, "--min-freq": options.min_freq != 1,
                  "--max-length": options.max_length is not None}
    if kind == "image" or name == "synthetic":
        bad = [flag for flag, given in text_flags.items() if given]
        if bad:
            raise UsageError(f"{bad[0]} does not apply to {name} (it has a fixed vocabulary or is images)")
    file_flags = [flag for flag, value in (("--train", options.train), ("--valid", options.valid),
                                           ("--test", options.test)) if value is not None]
    if file_flags and name != "text":
        raise UsageError(f"{file_flags[0]} is for `duvae prepare text`; use --source for {name}")
    if file_flags and options.source is not None:
        raise UsageError(f"text: give either --source or {'/'.join(file_flags)}, not both")
