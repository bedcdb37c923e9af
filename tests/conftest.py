"""Shared test fixtures: the real corpora beside the repository, and running the CLI in-process."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data seen from the repository root; tests that need it skip when it is absent."""
    path = (REPO / ".." / "shared" / "data").resolve()
    if not path.is_dir():
        pytest.skip("../shared/data (the real corpora) is not present")
    return path


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


@pytest.fixture
def duvae(capsys):
    """Run `duvae ARGS...` through the real entry point (errors -> one line + exit code), in-process."""
    from duvae_cli.cli import main

    def run(*args: object) -> CliResult:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(int(exit_info.value.code or 0), captured.out, captured.err)

    return run


@pytest.fixture
def duvae_subprocess():
    """The same through `python -m duvae_cli`, for end-to-end checks of exit codes and streams."""

    def run(*args: object, cwd: Path | None = None) -> CliResult:
        proc = subprocess.run([sys.executable, "-m", "duvae_cli", *map(str, args)], cwd=cwd,
                              capture_output=True, text=True, timeout=300)
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Test models are tiny: intra-op threads only contend (10-100x slower on a loaded 2-core box)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
