"""docs/api.md's code blocks run as written (the first on the toy run, as RUN)."""

from __future__ import annotations

import re
from pathlib import Path

from test_probe_toyrun import toy_run  # noqa: F401  (fixture)

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)\n```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_the_api_example_runs_on_a_trained_run(toy_run, capsys):
    exec(compile(blocks()[0], str(DOC), "exec"), {"RUN": toy_run})
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "text 2" and out[1].startswith("(3, 2) (3, 2) 1 of 12 tokens are <unk>")
    assert out[-1] == "True 4"  # the interpolation starts at the reconstruction of its first endpoint


def test_the_building_blocks_example_keeps_du_scales_at_gamma(capsys):
    exec(compile(blocks()[1], str(DOC), "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "0.5" and "du" in out[1]
