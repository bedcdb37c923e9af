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
    assert (workspace / "runs" / "toy" / "checkpoints" / "best.safetensors").is_file()

    refused = _duvae(workspace, "train", "--model", "toy", "--toy-option", "1.5", *small, "--run-dir", "runs/no")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "--toy-option 1.5: must be in [0, 1]" in refused.stderr
    assert not (workspace / "runs" / "no").exists()

    scored = _duvae(workspace, "evaluate", "runs/toy", "--split", "valid", "--iw-samples", "2", "--device", "cpu", "-q")
    assert scored.returncode == 0, scored.stderr
    table = _duvae(workspace, "report", "runs/toy", "--split", "valid", "--format", "csv")
    assert table.returncode == 0 and "toy_option=0.3" in table.stdout  # its own option, in the settings


_API_CHECK = """
import torch, duvae_cli
from duvae_cli.config import decide_runtime, resolve_config
from duvae_cli.methods import REGULARIZERS
from duvae_cli.runtime import precision
toy = duvae_cli.build_regularizer("toy", 4)                   # the Python API sees it: no extra call
assert "toy" in duvae_cli.REGULARIZERS and toy.toy_option == 0.5, toy
config = resolve_config("synthetic", "toy", {"device": "cpu"})
assert config.toy_option == 0.25                              # its preset for synthetic
precision.native_bf16 = lambda device: "avx512_bf16"          # bf16 hardware
assert decide_runtime(config, "text").precision == "fp32"     # no parity declared: fp32
REGULARIZERS["toy"].capabilities = type(toy.capabilities)(bf16={"text": "a parity run"})
runtime = decide_runtime(config, "text")
assert (runtime.precision, runtime.precision_reason) == ("bf16", "auto: avx512_bf16"), runtime
print("ok")
"""


def test_a_plugin_method_is_seen_by_the_api_its_presets_and_auto_precision(workspace):
    """One file named in DUVAE_METHODS: the Python API builds it without an extra call, its presets
    apply, and `--precision auto` honours the bf16 parity it declares (and only then picks bf16)."""
    env = {**os.environ, "DUVAE_METHODS": "toy_regularizer",
           "PYTHONPATH": os.pathsep.join([str(workspace), str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", _API_CHECK], cwd=workspace, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_a_constructor_default_that_differs_from_its_declaration_is_refused():
    from duvae_cli.methods.registry import Capabilities, check_method
    from duvae_cli.models.regularizer import Regularizer
    from duvae_cli.options import Option

    class Drifted(Regularizer):
        options = (Option("width", int, 60, "Width."),)
        capabilities = Capabilities()

        def __init__(self, latent_dim: int, width: int = 2):
            super().__init__()

    with pytest.raises(ValueError, match="constructor default width=2 differs from the declared default 60"):
        check_method(Drifted, "flow drifted")


def _units() -> dict[Path, str]:
    """Each library file -> its unit: the folder of duvae_cli/ it is in, or its top-level module."""
    return {p: p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in PACKAGE.rglob("*.py")}


def _unit_imports(path: Path) -> set[str]:
    """The units of duvae_cli/ that `path` imports anywhere, function-local imports included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
        found.update(n.split(".")[1] for n in names if n.startswith("duvae_cli.") and len(n.split(".")) > 1)
        if isinstance(node, ast.ImportFrom) and node.module == "duvae_cli":
            found.update(a.name for a in node.names)
    return found


def test_no_two_units_import_each_other_even_through_others():
    """Every arrow of the library's picture points down: no folder or top-level module of duvae_cli/
    reaches itself through imports, function-local ones included (issue 29)."""
    units = _units()
    names = set(units.values())
    graph: dict[str, set[str]] = {}
    for path, unit in units.items():
        graph.setdefault(unit, set()).update(u for u in _unit_imports(path) if u in names and u != unit)
    for start in graph:
        seen, todo = set(), list(graph[start])
        while todo:
            unit = todo.pop()
            assert unit != start, f"{start} imports itself through others: " + ", ".join(sorted(seen))
            if unit not in seen:
                seen.add(unit)
                todo.extend(graph.get(unit, ()))


def test_functions_and_folders_stay_small():
    long = [f"{p.relative_to(REPO)}:{n.lineno} {n.name}" for p in PACKAGE.rglob("*.py")
            for n in ast.walk(ast.parse(p.read_text())) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            and n.end_lineno - n.lineno + 1 > 60]
    assert not long, long
    sizes: dict[str, int] = {}
    for path in PACKAGE.rglob("*.py"):
        if path.parent != PACKAGE:
            folder = path.relative_to(PACKAGE).parts[0]
            sizes[folder] = sizes.get(folder, 0) + len(path.read_text().splitlines())
    assert max(sizes.values()) <= 1500, sizes


def test_no_library_file_over_300_lines():
    long = {str(p.relative_to(REPO)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 310}
    assert not long, long


def test_only_a_methods_own_file_names_it():
    """Facts about a method live in its file (capabilities, options, presets): no other module of the
    library writes a method's name, except the declared defaults of --model and --strategy."""
    from duvae_cli.methods import registered

    names = {m.name for m in registered()}
    allowed = {("config/general.py", "du"), ("config/general.py", "standard")}  # the defaults of the flags
    found = {(str(p.relative_to(PACKAGE)), node.value) for p in PACKAGE.rglob("*.py") if p.parent.name != "methods"
             for node in ast.walk(ast.parse(p.read_text()))
             if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names}
    assert found <= allowed, sorted(found - allowed)


def test_device_and_precision_are_each_resolved_by_one_function():
    """`--device` is read by runtime.device.resolve_device and `--precision` by
    runtime.precision.choose_precision, each called from one place only: runtime.decide."""
    calls = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", getattr(node.func, "attr", ""))
                if name in ("resolve_device", "choose_precision"):
                    calls.setdefault(name, set()).add(str(path.relative_to(PACKAGE)))
    assert calls == {"resolve_device": {"runtime/__init__.py"}, "choose_precision": {"runtime/__init__.py"}}
