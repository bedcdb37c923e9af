"""The benchmark scripts are run by hand, rarely, some only on a GPU machine: a script that no longer
parses (an indentation slip in a moved import broke gpu_check.py for a while) would be found only
when the machine time is already being paid for."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py"))


@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda path: path.name)
def test_every_benchmark_script_parses(script):
    ast.parse(script.read_text(encoding="utf-8"), filename=str(script))


def test_there_are_benchmark_scripts():
    assert len(BENCHMARKS) >= 5
