"""Run directories: creation (never overwriting), manifest, config.json read back and checked.

runs/<dataset>-<model>-<UTC stamp>-<config hash>/
    config.json  manifest.json  binding.json  history.csv  checkpoints/{last,best}.safetensors
    (metrics.*, probe.csv, figures/)   -- file by file in docs/runs.md
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

from duvae_cli import __version__
from duvae_cli.config.resolve import TrainConfig, check_ranges, typed_values
from duvae_cli.errors import DuvaeError, UsageError
from duvae_cli.io import atomic_write_text
from duvae_cli.runs.layout import CHECKPOINTS, EXPORT_KEY
from duvae_cli.runs.trust import check_workspace_path


def new_run_dir(config: TrainConfig, root: Path = Path("runs"), name: Path | None = None) -> Path:
    """Create a fresh run directory; an existing one is never reused."""
    if name is None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        name = root / f"{config.dataset}-{config.model}-{stamp}-{config.short_hash()}"
        for suffix in range(1, 1000):  # two runs in the same second with the same config
            if not name.exists():
                break
            name = root / f"{config.dataset}-{config.model}-{stamp}-{config.short_hash()}-{suffix}"
    try:
        name.mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        raise DuvaeError(f"--run-dir {name}: already exists; runs are never overwritten "
                         "(use --resume to continue it)") from None
    (name / CHECKPOINTS).mkdir()
    return name


def point_latest(run_dir: Path) -> None:
    """Make `<runs root>/latest` a symlink to the newest run (replaced atomically)."""
    latest = run_dir.parent / "latest"
    tmp = run_dir.parent / f".latest.{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(run_dir.name)
    os.replace(tmp, latest)


def write_json(path: Path, payload: dict) -> None:
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def git_sha() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def manifest(config: TrainConfig, data_path: Path, data_sha256: str, device: str) -> dict:
    return {
        "argv": sys.argv, "duvae_version": __version__, "git_sha": git_sha(),
        "python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform(),
        "seed": config.seed, "data_path": str(Path(data_path).resolve()), "data_sha256": data_sha256,
        "device": device, "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def read_config(run_dir: Path) -> TrainConfig:
    path = run_dir / "config.json"
    if not path.exists():
        raise DuvaeError(f"{run_dir}: not a duvae run directory (no config.json)")
    raw = read_json(path)
    data = dict(raw)
    # Flat, named fields; a field added since the run was made takes its default (the old behaviour).
    # Types and ranges are checked (a value outside its declaration is refused, as its flag would be).
    data.setdefault("precision", "fp32")  # runs from before `auto` existed trained in fp32
    data.pop(EXPORT_KEY, None)  # an export's block (runs/export.py)
    values = typed_values(data, f"{path}: ", DuvaeError)
    try:  # a stranger's run is refused before anything runs (runs/trust.py)
        check_ranges(values)
    except UsageError as exc:
        raise DuvaeError(f"{path}: {exc}; refusing to open the run") from None
    check_workspace_path(values.get("data_root"), "data_root", path, absolute_ok=EXPORT_KEY not in raw)
    return TrainConfig(**values)


def read_json(path: Path) -> dict:
    """A run's JSON file (config.json, manifest.json); a damaged one is one line naming it."""
    try:
        payload = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DuvaeError(f"{path}: missing (not a complete duvae run directory)") from None
    except (OSError, ValueError) as exc:
        raise DuvaeError(f"{path}: unreadable ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    if not isinstance(payload, dict):
        raise DuvaeError(f"{path}: unreadable (expected a JSON object)")
    return payload


def read_run_summary(run_dir: Path) -> dict:
    """What `duvae train` prints: the run directory, its config, and the last epoch's row."""
    import csv

    run_dir = Path(run_dir)
    rows = list(csv.DictReader((run_dir / "history.csv").open(encoding="utf-8")))
    final = {k: (float(v) if k not in ("epoch", "step", "val_au") else int(float(v))) for k, v in rows[-1].items()}
    info = read_json(run_dir / "manifest.json")
    return {"run_dir": str(run_dir), "config": read_config(run_dir).to_dict(), "final": final,
            "best_val_loss": info.get("best_val_loss"), "epochs_done": info.get("epochs_done")}
