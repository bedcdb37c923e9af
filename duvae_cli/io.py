"""Small file helpers: atomic writes and checksums. Nothing half-written ever replaces a good file."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import sys
import tempfile
from pathlib import Path
from typing import Iterator

from duvae_cli.errors import DuvaeError, OutputClosed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it onto `path`, on failure delete it."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix or ".tmp")
    except OSError as exc:  # read-only file system, no inodes left, permissions
        raise write_error(path, exc) from None
    os.close(fd)
    tmp = Path(tmp)
    try:
        try:
            yield tmp
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file ordinary permissions
            os.replace(tmp, path)
        except OSError as exc:  # disk full, quota, permissions: name the file, say what is kept
            raise write_error(path, exc) from None
    finally:
        if tmp.exists():
            tmp.unlink()


def write_error(path: Path, exc: BaseException) -> DuvaeError:
    """One line for a failed write of `path`; the atomic write left any earlier `path` as it was."""
    reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0][:200] or type(exc).__name__
    path = Path(path)
    kept = ("the previous file is intact" if path.is_file() else
            "a directory is in its place" if path.is_dir() else "nothing was written")
    return DuvaeError(f"{path}: cannot write ({reason}); {kept}")


def unwritable(folder: Path) -> str | None:
    """None when a file can be created in `folder`, else why not. Tried, not asked (os.access): root
    passes every permission check but not a read-only mount."""
    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=".duvae-write-check.")
    except OSError as exc:
        return exc.strerror or str(exc)
    os.close(fd)
    os.unlink(name)
    return None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_bytes(path: str | os.PathLike, data: bytes, suffix: str = "") -> None:
    with atomic_path(path, suffix=suffix) as tmp, open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())  # a full disk or quota shows here, not after the rename


@contextlib.contextmanager
def atomic_h5(path: str | os.PathLike, update: bool = False):
    """An `h5py.File` built in memory, then written to `path` atomically (temp file + rename) when the
    body succeeds. `update`: start from a copy of the existing `path` (else an empty file).

    HDF5 itself never writes to disk here: a full disk is an ordinary OSError of our own write,
    reported as one line naming `path` with the temp file removed. (An HDF5 library whose own write
    failed kept a half-closed file and crashed the interpreter at exit, exit 139: issue #28.)"""
    import h5py

    path = Path(path)
    buffer = io.BytesIO(path.read_bytes() if update and path.exists() else b"")
    with h5py.File(buffer, "a" if buffer.getbuffer().nbytes else "w") as handle:
        yield handle
    atomic_write_bytes(path, buffer.getvalue(), suffix=".h5.tmp")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_stdout(text: str) -> None:
    """Write `text` on stdout and flush it (rows reach a pipe as they are made); a reader that went
    away (`| head`) raises OutputClosed, which ends the command quietly with exit 0 (cli.main)."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        raise OutputClosed from None
