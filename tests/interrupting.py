"""Resume tests: a progress reporter that interrupts training after a given number of optimizer
steps, and the check that an interrupted-and-resumed run is the uninterrupted one."""

from __future__ import annotations

import contextlib
import csv
from pathlib import Path

import pytest
import torch

from duvae_cli.runs.checkpoint import load_checkpoint
from duvae_cli.runs.run import new_run_dir
from duvae_cli.train.loop import Hooks, train

TIMING = {"seconds", "sentences_per_s"}  # the only history columns two identical runs may differ in


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


def assert_same_run(whole: Path, parts: Path) -> list[list[dict]]:
    """The last checkpoint's weights equal bit for bit and history.csv equal but for timing; returns both histories."""
    weights = [load_checkpoint(d / "checkpoints" / "last.safetensors")["model"] for d in (whole, parts)]
    for key, value in weights[0].items():
        assert torch.equal(value, weights[1][key]), key
    rows = [list(csv.DictReader((d / "history.csv").open())) for d in (whole, parts)]
    assert [{k: v for k, v in r.items() if k not in TIMING} for r in rows[0]] == \
           [{k: v for k, v in r.items() if k not in TIMING} for r in rows[1]]
    return rows


def train_whole_and_resumed(config, dataset, root: Path, stop_after: int):
    """`config` trained once straight through (under root/a) and once interrupted on optimizer step
    `stop_after`, then resumed (root/b): (whole run dir, resumed run dir, the two final states)."""
    whole = new_run_dir(config, root / "a")
    state = train(config, dataset, whole)
    parts = new_run_dir(config, root / "b")
    with pytest.raises(Interrupt):
        train(config, dataset, parts, hooks=Hooks(reporter=StopAfter(stop_after)))
    return whole, parts, state, train(config, dataset, parts, resume=True)
