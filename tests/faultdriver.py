"""Run `duvae ARGS...` with one library function patched to stop at a chosen point, so a test can
signal the process at a known place without timing: `python faultdriver.py POINT N READY -- ARGS`.

POINT: `checkpoint` (after the N-th saved checkpoint), `prepare-write` (inside the dataset write, the
temp file open) or `evaluate-batch` (after N scored batches). At that point the process creates the
file READY and sleeps until signalled.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path


def _stall(ready: Path) -> None:
    """Wait here until a signal arrives (its handler runs, then the code goes on or raises)."""
    signal.alarm(300)  # a forgotten process still ends
    ready.write_text("ready")
    signal.pause()


def _after(n: int, ready: Path, real):
    calls = []

    def wrapped(*args, **kwargs):
        result = real(*args, **kwargs)
        calls.append(1)
        if len(calls) == n:
            _stall(ready)
        return result

    return wrapped


def main() -> None:
    point, n, ready = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    args = sys.argv[sys.argv.index("--") + 1:]
    if point == "checkpoint":
        from duvae_cli.train import loop

        loop.save_checkpoint = _after(n, ready, loop.save_checkpoint)
    elif point == "prepare-write":
        from duvae_cli.data import store

        real = store._write_root
        store._write_root = lambda *a: (real(*a), _stall(ready))
    elif point == "evaluate-batch":
        from duvae_cli.metrics import evaluate

        evaluate._score_batch = _after(n, ready, evaluate._score_batch)
    from duvae_cli.cli import main as duvae

    duvae(args)


if __name__ == "__main__":
    main()
