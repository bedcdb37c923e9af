"""How the library reports progress without knowing about terminals.

Library functions take a `Reporter`; the CLI passes one that draws rich bars on stderr, tests pass
nothing and get the silent default. A reporter is three calls: `task` opens a bar, `advance` moves it
(with fields shown beside it), `log` writes one line; `skip(task, n)` marks work done before this
process started (a task may implement `skip` so that its rate and time left leave it out). A reporter may add a fourth, `note`: a line
that qualifies a result (its numbers are of changed data, its data was found elsewhere), which the
CLI prints even with --quiet; `note(reporter, line)` falls back to `log` for reporters without it.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Protocol


class Task(Protocol):
    def advance(self, n: int = 1, **fields: object) -> None: ...


class Reporter(Protocol):
    def task(self, description: str, total: int | None) -> contextlib.AbstractContextManager[Task]: ...

    def log(self, message: str) -> None: ...


class _SilentTask:
    def advance(self, n: int = 1, **fields: object) -> None:
        pass


class SilentReporter:
    """The default: reports nothing."""

    @contextlib.contextmanager
    def task(self, description: str, total: int | None) -> Iterator[Task]:
        yield _SilentTask()

    def log(self, message: str) -> None:
        pass


SILENT = SilentReporter()


def skip(task: Task, n: int) -> None:
    """Mark `n` items as done before this process started (a resumed epoch, an evaluation's kept
    examples): shown as done, left out of the rate and the time left; `advance` for tasks without `skip`."""
    getattr(task, "skip", task.advance)(n)


def note(reporter: Reporter, message: str) -> None:
    """A line about what a result is of: not progress, so `--quiet` does not hide it (console.py)."""
    getattr(reporter, "note", reporter.log)(message)
