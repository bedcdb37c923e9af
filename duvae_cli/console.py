"""Terminal output for the CLI: rich bars and logs on stderr, results on stdout.

Colour and live bars only when the stream is a terminal (rich decides, and honours NO_COLOR);
otherwise progress becomes plain lines at most every few seconds, and `--quiet` silences it all.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

stderr = Console(stderr=True, highlight=False)
stdout = Console(highlight=False)


def _fmt(fields: dict) -> str:
    parts = []
    for key, value in fields.items():
        parts.append(f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}")
    return "  ".join(parts)


class _RichTask:
    def __init__(self, progress: Progress, task_id):
        self.progress, self.task_id = progress, task_id

    def advance(self, n: int = 1, **fields: object) -> None:
        self.progress.update(self.task_id, advance=n, fields=_fmt(fields))


class _PlainTask:
    """Non-terminal progress: a line every `every` seconds and one at the end."""

    def __init__(self, description: str, total: int | None, every: float = 10.0):
        self.description, self.total, self.every = description, total, every
        self.done, self.fields, self.start = 0, {}, time.monotonic()
        self.last = self.start

    def advance(self, n: int = 1, **fields: object) -> None:
        self.done += n
        self.fields = fields
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self.emit()

    def emit(self) -> None:
        total = f"/{self.total}" if self.total else ""
        elapsed = time.monotonic() - self.start
        print(f"{self.description}: {self.done}{total} ({elapsed:.0f}s) {_fmt(self.fields)}".rstrip(),
              file=sys.stderr, flush=True)


class CliReporter:
    """A `duvae_cli.progress.Reporter` for the terminal."""

    def __init__(self, quiet: bool = False, notes: bool = True):
        self.quiet, self.notes = quiet, notes  # notes: False on torchrun ranks other than 0

    @contextlib.contextmanager
    def task(self, description: str, total: int | None) -> Iterator[object]:
        if self.quiet:
            from duvae_cli.progress import _SilentTask

            yield _SilentTask()
        elif stderr.is_terminal:
            columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                       TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[fields]}")]
            with Progress(*columns, console=stderr, transient=False) as progress:
                yield _RichTask(progress, progress.add_task(description, total=total, fields=""))
        else:
            task = _PlainTask(description, total)
            yield task
            task.emit()

    def log(self, message: str) -> None:
        if not self.quiet:
            stderr.print(message, markup=False, soft_wrap=True)

    def note(self, message: str) -> None:
        """What a result is of (progress.note): shown with --quiet too."""
        if self.notes:
            stderr.print(message, markup=False, soft_wrap=True)


def emit_json(payload: object) -> None:
    """Machine-readable result on stdout: one JSON document."""
    sys.stdout.write(json.dumps(payload, indent=2, default=_json_default) + "\n")
    sys.stdout.flush()


def _json_default(value: object) -> object:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def print_table(title: str | None, columns: list[str], rows: list[list[object]]) -> None:
    """A result table on stdout (plain text when stdout is not a terminal)."""
    table = Table(title=title, show_edge=False, header_style="bold" if stdout.is_terminal else None)
    for column in columns:
        table.add_column(column, justify="left" if column == columns[0] else "right")
    for row in rows:
        table.add_row(*[f"{v:.4f}" if isinstance(v, float) else str(v) for v in row])
    stdout.print(table)
