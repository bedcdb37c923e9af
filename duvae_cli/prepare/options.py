"""What `duvae prepare` can be asked: one frozen options record, with its checks."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from duvae_cli.errors import UsageError
from duvae_cli.options import command_problem

TOKENIZERS = ("word", "sentencepiece")
DEFAULT_SENTENCEPIECE_SIZE = 8000
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class PrepareOptions:
    """Mirrors the `duvae prepare` flags; the defaults are the CLI's defaults."""

    source: str | None = None  # folder, file or URL; None = local copy or the canonical URLs
    out: Path = Path("data")
    tokenizer: str = "word"
    vocab_size: int | None = None  # total entries, the 4 specials included
    vocab: Path | None = None  # impose this vocabulary file
    min_freq: int = 1
    max_length: int | None = None  # drop sentences with more tokens than this
    train: Path | None = None  # `text` only
    valid: Path | None = None
    test: Path | None = None
    split: str = "0.8,0.1,0.1"  # train,valid,test fractions when one file is carved
    seed: int = 783435  # the seed of the reference label-subset script
    force: bool = False
    as_name: str | None = None  # output name (default: the dataset's name)

    def fractions(self) -> tuple[float, float, float]:
        return parse_split(self.split)


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
    """Reject flags that do not apply to this dataset or contradict each other (exit 2)."""
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
    if options.tokenizer not in TOKENIZERS:
        raise UsageError(f"--tokenizer {options.tokenizer!r}: choose one of {', '.join(TOKENIZERS)}")
    if options.tokenizer == "sentencepiece" and (options.vocab is not None or options.min_freq != 1):
        raise UsageError("--vocab and --min-freq apply to --tokenizer word only")
    if options.vocab is not None and options.vocab_size is not None:
        raise UsageError("--vocab imposes a vocabulary; it cannot be combined with --vocab-size")
    _check_numbers(options)
    if options.as_name is not None and not _NAME.match(options.as_name):
        raise UsageError(f"--as {options.as_name!r}: use letters, digits, '.', '_' or '-' only")
    options.fractions()


def _check_numbers(options: PrepareOptions) -> None:
    if options.vocab_size is not None and options.vocab_size < 5:
        raise UsageError(f"--vocab-size {options.vocab_size}: must be at least 5 (4 special tokens + 1)")
    if options.min_freq < 1:
        raise UsageError(f"--min-freq {options.min_freq}: must be at least 1")
    if options.max_length is not None and options.max_length < 1:
        raise UsageError(f"--max-length {options.max_length}: must be at least 1")
    problem = command_problem(seed=options.seed)  # declared in duvae_cli/options.py
    if problem:
        raise UsageError(problem)
