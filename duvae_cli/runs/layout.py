"""Where things are in a run directory and in an export folder (docs/runs.md, docs/use.md), and where
a run's results go.

    RUN/checkpoints/{best,last}.safetensors     one file per checkpoint (runs/checkpoint.py)
    RUN/checkpoints/{best,last}.pt              a run made by an earlier duvae: pickled, refused
                                                until `duvae migrate RUN` converts it (runs/migrate.py)
    OUT/model.safetensors                       an export (`duvae export`; runs/export.py)

Every checkpoint name of the package goes through `checkpoint_path` (the training loop's
`Training.checkpoint(name)` included). Torch-free: `duvae report` reads it.
"""

from __future__ import annotations

import os
from pathlib import Path

from duvae_cli.errors import DuvaeError, UsageError
from duvae_cli.io import unwritable

CHECKPOINTS = "checkpoints"
SUFFIX = ".safetensors"
OLD_SUFFIX = ".pt"  # torch.save pickles, written by earlier versions of duvae
NAMES = ("best", "last")
EXPORT_WEIGHTS = "model.safetensors"  # the file that makes a folder an export
EXPORT_KEY = "duvae_export"  # config.json of an export: the resolved config plus this one block
LOCK = ".lock"  # RUN/.lock: held by the process that trains or migrates the run (duvae_cli/locking.py)


def checkpoint_path(run_dir: str | Path, name: str) -> Path:
    """RUN/checkpoints/<name>.safetensors (`name`: best or last)."""
    return Path(run_dir) / CHECKPOINTS / f"{name}{SUFFIX}"


def old_checkpoint_path(run_dir: str | Path, name: str) -> Path:
    return Path(run_dir) / CHECKPOINTS / f"{name}{OLD_SUFFIX}"


def has_checkpoint(run_dir: str | Path) -> bool:
    """Whether the run has any checkpoint, in this format or the pickled one."""
    folder = Path(run_dir) / CHECKPOINTS
    return any(folder.glob(f"*{SUFFIX}")) or any(folder.glob(f"*{OLD_SUFFIX}"))


def checkpoint_file(run_dir: Path, name: str) -> Path:
    """RUN/checkpoints/<name>.safetensors; a run made by an earlier duvae (pickled <name>.pt) is
    refused in one line that says how to convert it."""
    path, old = checkpoint_path(run_dir, name), old_checkpoint_path(run_dir, name)
    if not path.exists() and not path.is_symlink() and old.exists():
        raise DuvaeError(f"{run_dir}: made by an earlier duvae (pickled checkpoints/{old.name}, which duvae no "
                         f"longer unpickles); convert it once with: duvae migrate {run_dir}")
    return path


def require_run_dir(run_dir: str | os.PathLike) -> None:
    """A run directory (or export folder) that is not there is a usage error (exit 2): the path was
    given on the command line (or is the default runs/latest)."""
    if not Path(run_dir).is_dir():
        raise UsageError(f"{run_dir}: no such run directory")


def is_export(folder: str | Path) -> bool:
    """An export folder (`duvae export`) rather than a run directory."""
    return (Path(folder) / EXPORT_WEIGHTS).is_file() and not (Path(folder) / CHECKPOINTS).is_dir()


def results_dir(run_dir: Path, out: str | os.PathLike | None) -> Path:
    """Where `evaluate`/`classify` write a run's results (and, for evaluate, its lock and partial
    results): `out` when given (created), else the run directory (never an export folder: exit 2). A
    run directory that cannot be written (a read-only file system, a copy on a read-only share) and no
    --out: one line, exit 2, before any work."""
    require_run_dir(run_dir)
    if out is None and is_export(run_dir):  # its files are listed with their sha256 in its card
        raise UsageError(f"{run_dir}: an export, which stays as its author made it; write the results "
                         "elsewhere with --out DIR")
    if out is not None:
        try:
            Path(out).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"--out {out}: cannot create it ({exc.strerror or exc})") from None
        reason = unwritable(Path(out))
        if reason:
            raise UsageError(f"--out {out}: cannot write there ({reason})")
        return Path(out)
    reason = unwritable(Path(run_dir))
    if reason:
        raise UsageError(f"{run_dir}: cannot write the results into the run ({reason}); "
                         "write them elsewhere with --out DIR")
    return Path(run_dir)
