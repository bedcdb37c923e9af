"""One writer at a time: an exclusive lock per output (a prepared dataset, a run directory, an
evaluation), taken without waiting.

    with hold(Path("runs/x/.lock"), "run runs/x"):
        ...  # a second writer fails at once: "run runs/x: in use by pid 12 on host h since <UTC>"

The lock is the kernel's `flock` on the lock file, so it dies with its process: a lock file left by
a killed process (SIGKILL, power loss) is stale and the next writer simply takes it. The file holds
the holder's pid, host and start time for the message. It is removed on release; a writer that
opened the file just before it was removed sees that the path now names another file and retries,
so two writers can never both hold a lock. flock is reliable on local file systems (and on NFS v4
with Linux clients); see docs/reliability.md.

    with locked_for_update(Path("runs/x/metrics.csv")):
        ...  # a read-modify-write of the file: waits for the other writers (evaluate, migrate, sweep)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Iterator

from duvae_cli.errors import DuvaeError
from duvae_cli.io import write_error


class Busy(DuvaeError):
    """Another process holds the lock: exit 1, one line naming it."""


@contextlib.contextmanager
def hold(path: Path, what: str) -> Iterator[None]:
    """Hold the exclusive lock `path` for the body; `what` names the locked thing in the message."""
    path = Path(path)
    created = [p for p in [path.parent, *path.parent.parents] if not p.exists()]  # removed again if empty
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = _acquire(path, what)
    except OSError as exc:  # a read-only file system, permissions, no inodes left
        raise DuvaeError(f"{what}: cannot take the lock {path} ({exc.strerror or exc})") from None
    try:
        holder = {"pid": os.getpid(), "host": socket.gethostname(),
                  "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        # On a full disk the record is skipped: the flock holds all the same, the record only names
        # the holder in a second writer's message.
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps(holder).encode())
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)  # before unlocking: a waiter then finds a new file (see _acquire)
        os.close(fd)  # releases the flock
        for folder in created:  # a failed first `prepare` leaves no empty OUT/ behind
            with contextlib.suppress(OSError):
                folder.rmdir()


def _acquire(path: Path, what: str) -> int:
    for _ in range(100):  # each retry means a holder released in between; 100 is never reached
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise Busy(f"{what}: in use by {describe_holder(path)} (lock {path}); wait for it or stop it") from None
        try:
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # we locked a file that its holder removed on release: take the new one
    raise Busy(f"{what}: could not take the lock {path}")


def describe_holder(path: Path) -> str:
    """'pid 12 on host h since 2026-12-01T10:00:00Z', from the lock file's record."""
    try:
        info = json.loads(Path(path).read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "another process (starting)"
    return f"pid {info.get('pid')} on host {info.get('host')} since {info.get('since')}"


@contextlib.contextmanager
def locked_for_update(path: Path):
    """An exclusive advisory lock on `<path>.lock` for a read-modify-write of `path`."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path.with_name(f".{path.name}.lock"), "w")
    except OSError as exc:  # a read-only or full file system: name the file we meant to write
        raise write_error(path, exc) from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
