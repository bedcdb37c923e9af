"""Hostile input, refused before anything runs (docs/reliability.md, threat model).

A run or an export someone sent you is data. Before duvae uses one it checks, each failure one line
(DuvaeError, exit 1) naming the file:

- `pickle_kind`: a file that is a pickle or a zip archive (what `torch.save` writes) where duvae
  expects safetensors or JSON; nothing is ever unpickled (runs/checkpoint.py reads the rest);
- `check_links`: a symlink in the run or export whose target lies outside it (a checkpoint that is
  "/home/you/.ssh/id_rsa" or another run's file);
- `check_workspace_path`: a path recorded in the run that climbs out of the workspace (the current
  directory) with `..`; an export may hold no absolute path either;
- `check_vocab_lines`: a vocabulary entry longer than MAX_TOKEN_BYTES (a line of megabytes);
- config values outside their declared ranges are checked where config.json is read
  (runs/run.py `read_config`, with the same declarations as the flags: options.Option.problem).

Below everything that opens runs: it imports only data/binding.py (to read binding.json).
"""

from __future__ import annotations

import os
from pathlib import Path

from duvae_cli.data import binding
from duvae_cli.errors import DuvaeError

MAX_TOKEN_BYTES = 1024  # a word or sentencepiece piece; real ones are under 100 bytes
PICKLE_PROTOCOLS = range(2, 6)  # pickle protocols 2-5 start with 0x80 and the protocol byte


def pickle_kind(data: bytes) -> str | None:
    """'pickle' or 'zip archive (torch.save)' when the bytes start like one, else None."""
    if data[:4] == b"PK\x03\x04":
        return "zip archive (torch.save)"
    if len(data) >= 2 and data[0] == 0x80 and data[1] in PICKLE_PROTOCOLS:
        return "pickle"
    return None


def check_inside(path: Path, root: Path, what: str = "the run") -> None:
    """`path` (a file of `root`) must not be, or sit under, a symlink leading outside `root`."""
    path, root = Path(path), Path(root)
    target, inside = path.resolve(), root.resolve()
    if target != inside and inside not in target.parents:
        raise DuvaeError(f"{path}: a symlink to {target}, outside {what} {root}; refusing to read it "
                         "(copy the file into the folder if it belongs there)")


def check_regular(path: Path) -> None:
    """A checkpoint file: inside its run (RUN/checkpoints/NAME) when it is a symlink."""
    path = Path(path)
    if path.is_symlink():
        check_inside(path, path.parent.parent)


def check_links(folder: Path, what: str = "the run") -> None:
    """Every symlink under `folder` (not followed) must point inside it."""
    folder = Path(folder)
    for top, dirs, files in os.walk(folder):
        for name in (*dirs, *files):
            entry = Path(top) / name
            if entry.is_symlink():
                check_inside(entry, folder, what)


def check_folder(folder: Path, what: str = "the run") -> None:
    """What a run or an export must pass before any of it is read: no symlink out of it, no
    oversized vocabulary entry in its binding.json."""
    check_links(folder, what)
    bound = binding.read(folder)
    if bound is not None:
        check_vocab_lines(bound.get("vocab") or [], Path(folder) / binding.FILENAME)


def check_workspace_path(value, field: str, source: Path, absolute_ok: bool = True) -> None:
    """A path recorded in `source` (config.json, manifest.json): a relative one is read from the
    workspace (the current directory) and must stay inside it; an absolute one only if allowed."""
    if value is None or value == "":
        return
    path = Path(str(value))
    if path.is_absolute():
        if absolute_ok:
            return
        raise DuvaeError(f"{source}: {field} {str(value)!r} is an absolute path; an export holds none "
                         "(its data is found by fingerprint under --data-root or data/)")
    workspace = Path.cwd().resolve()
    resolved = (workspace / path).resolve()
    if resolved != workspace and workspace not in resolved.parents:
        raise DuvaeError(f"{source}: {field} {str(value)!r} leads outside the workspace {workspace}; "
                         "refusing it (edit the field, or give the data with --data-root)")


def check_vocab_lines(tokens, source: Path) -> None:
    """Every vocabulary entry is a string of at most MAX_TOKEN_BYTES bytes (UTF-8)."""
    for i, token in enumerate(tokens):
        if not isinstance(token, str):
            raise DuvaeError(f"{source}: vocabulary entry {i} is not a string")
        if len(token) > MAX_TOKEN_BYTES or len(token.encode("utf-8")) > MAX_TOKEN_BYTES:
            raise DuvaeError(f"{source}: vocabulary entry {i} is {len(token.encode('utf-8')):,} bytes long "
                             f"(at most {MAX_TOKEN_BYTES} are accepted); a damaged or hostile vocabulary")
