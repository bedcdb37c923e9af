"""Terminal output for the CLI: rich bars and logs on stderr, results on stdout.

Colour and live bars only when the stream is a terminal (rich decides, and honours NO_COLOR);
otherwise progress becomes plain lines (`_PlainTask`: every 10 s and at each quarter, with the rate
and the time left, and one final line), and `--quiet` silences it all but notes.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from typing import Iterator

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.table import Table
from rich.text import Text

from duvae_cli.errors import OutputClosed
from duvae_cli.io import write_stdout

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

    def skip(self, n: int) -> None:
        """`n` done before this process started (a resume): shown, left out of the rate."""
        if n:
            self.progress.reset(self.task_id, completed=n)


class _RateColumn(ProgressColumn):
    """Items per second, as the bar's own estimate (over its last 30 s) gives it."""

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{_rate(speed)}/s")


def _rate(speed: float) -> str:
    return f"{speed:.3g}" if speed < 1000 else f"{speed:,.0f}"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


# Plain progress lines (stderr not a terminal): at most every EVERY seconds, and at each PERCENT of
# the total but not within MIN_GAP seconds of the last line; plus one final line.
EVERY, PERCENT, MIN_GAP = 10.0, 25, 1.0


class _PlainTask:
    """Non-terminal progress: plain lines with the rate and the time left (see EVERY), and one at the end."""

    def __init__(self, description: str, total: int | None):
        self.description, self.total = description, total
        self.done, self.base, self.fields = 0, 0, {}
        self.start = self.last = time.monotonic()
        self.shown = -1  # `done` when the last line was printed

    def advance(self, n: int = 1, **fields: object) -> None:
        self.done += n
        self.fields = fields or self.fields
        now = time.monotonic()
        crossed = bool(self.total) and self.done * 100 // (PERCENT * self.total) > self.shown * 100 // (PERCENT * self.total)
        if now - self.last >= EVERY or (crossed and now - self.last >= MIN_GAP):
            self.emit()

    def skip(self, n: int) -> None:
        self.done = self.base = self.done + n

    def emit(self, final: bool = False) -> None:
        if final and self.done == self.shown:  # the last line already says it: printed once
            return
        self.last, self.shown = time.monotonic(), self.done
        print(self.line(final), file=sys.stderr, flush=True)

    def line(self, final: bool = False) -> str:
        elapsed = time.monotonic() - self.start
        rate = (self.done - self.base) / elapsed if elapsed > 0 else 0.0
        count = f"{self.done}/{self.total} ({100 * self.done / self.total:.0f}%)" if self.total else f"{self.done}"
        timing = f"{_rate(rate)}/s, {_duration(elapsed)} elapsed"
        if final or (self.total and self.done >= self.total):
            timing += ", done"
        elif self.total and rate > 0:
            timing += f", {_duration((self.total - self.done) / rate)} left"
        return f"{self.description}: {count}, {timing}  {_fmt(self.fields)}".rstrip()


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
            columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), _RateColumn(),
                       TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[fields]}")]
            # stdout is not redirected through the bar: rows written there (generate, encode) stay on stdout
            with Progress(*columns, console=stderr, transient=False, redirect_stdout=False) as progress:
                yield _RichTask(progress, progress.add_task(description, total=total, fields=""))
        else:
            task = _PlainTask(description, total)
            yield task
            task.emit(final=True)

    def log(self, message: str) -> None:
        if not self.quiet:
            stderr.print(message, markup=False, soft_wrap=True)

    def note(self, message: str) -> None:
        """What a result is of (progress.note): shown with --quiet too."""
        if self.notes:
            stderr.print(message, markup=False, soft_wrap=True)


def emit_json(payload: object) -> None:
    """Machine-readable result on stdout: one JSON document."""
    write_stdout(json.dumps(payload, indent=2, default=_json_default) + "\n")


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
    try:
        stdout.print(table)
    except BrokenPipeError:  # `| head`: the reader has what it wanted (cli.main ends quietly)
        raise OutputClosed from None
