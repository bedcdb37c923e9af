"""A progress reporter that interrupts training after a given number of optimizer steps (resume tests)."""

from __future__ import annotations

import contextlib


class Interrupt(Exception):
    pass


class StopAfter:
    """The loop calls `advance(..., loss=..., kl=...)` once per step; raise on step `steps`."""

    def __init__(self, steps: int):
        self.steps, self.seen = steps, 0

    def task(self, description, total):
        owner = self

        class Task:
            def advance(self, n=1, **fields):
                if fields:
                    owner.seen += 1
                    if owner.seen == owner.steps:
                        raise Interrupt

        return contextlib.nullcontext(Task())

    def log(self, message):
        pass
