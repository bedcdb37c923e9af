"""Adding a method is one new file plus its registry line: the toy regularizer of docs/extending.md,
loaded from a temporary module (DUVAE_METHODS), gets its flag, validation and config.json field.
Also: the library has no import cycles and no file far over 300 lines."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from duvae_cli.data.store import SPECIALS, Built, SplitData, write_dataset

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "duvae_cli"


def _split(n: int, rng: np.random.Generator) -> SplitData:
    lengths = rng.integers(2, 7, n)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return SplitData({"tokens": rng.integers(4, 14, offsets[-1]).astype(np.int32), "offsets": offsets})


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A temporary module with the toy regularizer and a tiny data/tiny/dataset.h5."""
    root = tmp_path_factory.mktemp("extending")
    shutil.copy(REPO / "docs" / "examples" / "toy_regularizer.py", root / "toy_regularizer.py")
    rng = np.random.default_rng(0)
    built = Built(kind="text", splits={"train": _split(48, rng), "valid": _split(16, rng)},
                  vocab=[*SPECIALS, *(f"w{i}" for i in range(10))], tokenizer="word")
    write_dataset(root / "data" / "tiny" / "dataset.h5", "tiny", built)
    return root


def _duvae(root: Path, *args: object) -> subprocess.CompletedProcess:
    env = {**os.environ, "DUVAE_METHODS": "toy_regularizer", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(root), str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "duvae_cli", *map(str, args)], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow  # three `python -m duvae_cli` processes (~20 s on a shared CPU)
def test_toy_regularizer_help_train_and_range(workspace):
    shown = _duvae(workspace, "train", "--help")
    assert shown.returncode == 0 and "--toy-option" in shown.stdout
    assert "toy: Extra weight of the KL term." in " ".join(shown.stdout.split())

    small = ["--dataset", "tiny", "--epochs", "1", "--batch-size", "16", "--latent-dim", "2",
             "--set", "embed_dim=8", "--set", "hidden_dim=8", "--device", "cpu", "--quiet"]
    done = _duvae(workspace, "train", "--model", "toy", "--toy-option", "0.3", *small, "--run-dir", "runs/toy")
    assert done.returncode == 0, done.stderr
    config = json.loads((workspace / "runs" / "toy" / "config.json").read_text())
    assert config["model"] == "toy" and config["toy_option"] == 0.3
    assert (workspace / "runs" / "toy" / "checkpoints" / "best.pt").is_file()

    refused = _duvae(workspace, "train", "--model", "toy", "--toy-option", "1.5", *small, "--run-dir", "runs/no")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "--toy-option 1.5: must be in [0, 1]" in refused.stderr
    assert not (workspace / "runs" / "no").exists()


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The package modules `path` imports at module level (function-level imports are lazy):
    `from pkg import sub` is an edge to the module pkg.sub, `from pkg import name` one to pkg."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
    return found & modules


def test_library_has_no_import_cycles():
    modules = {".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"): p
               for p in PACKAGE.rglob("*.py")}
    graph = {m: _imports(p, set(modules)) - {m} for m, p in modules.items()}
    state: dict[str, int] = {}

    def visit(module: str, trail: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                pytest.fail("import cycle: " + " -> ".join(trail[trail.index(target):] + [module, target]))
            if target not in state:
                visit(target, trail + [module])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


def test_no_library_file_over_300_lines():
    long = {str(p.relative_to(REPO)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 310}
    assert not long, long
