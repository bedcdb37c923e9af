"""Ctrl-C as a request, not a crash.

`Interrupted` is the one exception an interrupted command ends with: the CLI prints its one line
and exits 130. `raising()` turns SIGINT into `Interrupted` (the CLI installs it for every command);
`deferred()` turns it into a flag that the training loop reads between steps, so the step in
progress completes and is checkpointed before the run stops. A second Ctrl-C while deferred stops at
once. `recorded()` only records the signals it is given (SIGINT, SIGTERM) for a loop that stops in
its own way: the sweep driver stops its workers before it exits. Signal handlers can only be
installed from the main thread; elsewhere all three are no-ops and Ctrl-C is Python's
KeyboardInterrupt.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator


class Interrupted(BaseException):
    """Stopped by Ctrl-C (or SIGINT): exit 130, one line saying what was kept and how to continue.
    A BaseException, like KeyboardInterrupt, so `except Exception` handlers do not swallow it."""

    exit_code = 130


class StopFlag:
    """Set by the first SIGINT while `deferred()` is active; the loop checks `requested`.
    Under `recorded()`, `signals` lists every signal received, in order."""

    def __init__(self):
        self.requested = False
        self.signals: list[int] = []


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _raise(signum, frame):
    raise Interrupted("interrupted")


@contextlib.contextmanager
def raising() -> Iterator[None]:
    """SIGINT raises `Interrupted` inside the body (the previous handler is restored after)."""
    if not _on_main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def deferred(enabled: bool = True) -> Iterator[StopFlag]:
    """SIGINT sets the yielded flag; a second SIGINT raises `Interrupted` at once."""
    flag = StopFlag()
    if not enabled or not _on_main_thread():
        yield flag
        return

    def request(signum, frame):
        if flag.requested:
            raise Interrupted("interrupted")
        flag.requested = True

    previous = signal.signal(signal.SIGINT, request)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def recorded(signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> Iterator[StopFlag]:
    """Each of `signals` is appended to the yielded flag's `signals` (and sets `requested`); nothing is
    raised, so the body is never cut short between starting a child process and recording it."""
    flag = StopFlag()
    if not _on_main_thread():
        yield flag
        return

    def note(signum, frame):
        flag.requested = True
        flag.signals.append(signum)

    previous = {signum: signal.signal(signum, note) for signum in signals}
    try:
        yield flag
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
