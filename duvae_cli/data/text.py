"""Reading text corpora: one example per line, plain or `LABEL<TAB>sentence`.

Every line is kept (empty ones as "") so that line numbers in errors and seeded splits refer to the
file as it is on disk. Errors name the file and the line and are raised before anything is written.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from duvae_cli.errors import DuvaeError, UsageError

STDIN = "-"  # a SourceFile at this path reads standard input
LABEL_MODES = ("auto", "required", "none")
MAX_LABEL = 100_000  # a larger class id is a typo or a foreign column (classify allocates per class)
_INT = re.compile(r"^-?\d+$")


@dataclass(frozen=True)
class SourceFile:
    path: Path
    label: int | None = None  # a label given by the file name (Shen et al.'s .0/.1 suffix)
    display: str = ""  # how messages name the file (the URL or the path as given)

    @property
    def shown(self) -> str:
        return self.display or str(self.path)


@dataclass
class Lines:
    """One file's lines: texts[i] is line i+1's sentence ("" when empty); labels[i] its label or None."""

    file: SourceFile
    texts: list[str]
    labels: list[int | None]
    labelled: bool  # labels came from LABEL<TAB> fields or the file name


def read_lines(file: SourceFile, mode: str = "auto") -> Lines:
    """Parse a file; `mode`: auto (detect from the first line), required (every line labelled) or
    none (no label field: a tab is whitespace; the file's own label, if any, applies)."""
    raw_lines = decode_lines(file)
    if not any(line.strip() for line in raw_lines):
        raise DuvaeError(f"{file.shown}: empty file (no sentences)")
    if mode == "none":
        return Lines(file, [" ".join(line.split()) for line in raw_lines],
                     [file.label if line.strip() else None for line in raw_lines], file.label is not None)
    first = next(i for i, line in enumerate(raw_lines) if line.strip())
    labelled = mode == "required" or "\t" in raw_lines[first]
    texts, labels = [], []
    for number, line in enumerate(raw_lines, start=1):
        label, text = _split_label(file, number, line, labelled, None if mode == "required" else first + 1)
        texts.append(text)
        labels.append(label if labelled else file.label)
    return Lines(file, texts, labels, labelled or file.label is not None)


def decode_lines(file: SourceFile) -> list[str]:
    """The file's lines as text (no line ends); unreadable or non-UTF-8 bytes are a named error."""
    try:
        raw = sys.stdin.buffer.read() if str(file.path) == STDIN else file.path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{file.shown}: no such file") from None  # named on the command line: exit 2
    except OSError as exc:
        raise DuvaeError(f"{file.shown}: cannot read ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DuvaeError(f"{file.shown}: line {line}: not UTF-8 (byte 0x{raw[exc.start]:02x} at column "
                         f"{column})") from None
    if "\x00" in text:  # HDF5 strings (the vocabulary) cannot hold NUL; say where it is
        nul = text.index("\x00")
        line, column = text.count("\n", 0, nul) + 1, nul - (text.rfind("\n", 0, nul) + 1) + 1
        raise DuvaeError(f"{file.shown}: line {line}: NUL byte at column {column} (not a text file?)")
    lines = text.removeprefix("\ufeff").split("\n")
    if lines and lines[-1] == "":  # a final newline ends the last line, it does not start one
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def _split_label(file: SourceFile, number: int, line: str, labelled: bool, first: int | None):
    """(label, text) of one line; `first` is the first non-empty line, which fixed the format
    (None when the dataset's format requires labels)."""
    if not line.strip():
        return None, ""
    has_tab = "\t" in line
    if first is None and not has_tab:
        raise DuvaeError(f"{file.shown}: line {number}: no label (this dataset's lines are LABEL<TAB>sentence)")
    if has_tab != labelled:
        have, lack = ("a label", "none") if has_tab else ("no label", "one")
        raise DuvaeError(f"{file.shown}: line {number}: {have}, but line {first} has {lack} "
                         "(labelled and unlabelled lines mixed; expected LABEL<TAB>sentence throughout "
                         "or plain lines throughout)")
    if not labelled:
        return None, " ".join(line.split())
    field, _, text = line.partition("\t")
    field = field.strip()
    if not _INT.match(field):
        raise DuvaeError(f"{file.shown}: line {number}: label {field!r} is not an integer "
                         "(expected LABEL<TAB>sentence with LABEL in 0..K-1)")
    if int(field) < 0:
        raise DuvaeError(f"{file.shown}: line {number}: label {field} is negative (labels are 0..K-1)")
    if int(field) > MAX_LABEL:
        raise DuvaeError(f"{file.shown}: line {number}: label {field} is above {MAX_LABEL:,} "
                         "(labels are class ids 0..K-1)")
    return int(field), " ".join(text.split())
