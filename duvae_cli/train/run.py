"""Run directories: creation (never overwriting), manifest, atomic checkpoints, and reloading.

runs/<dataset>-<model>-<UTC stamp>-<config hash>/
    config.json  manifest.json  history.csv  checkpoints/{last,best}.pt  (metrics.*, probe.csv, figures/)
"""

from __future__ import annotations

import io
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from duvae_cli import __version__
from duvae_cli.data import binding
from duvae_cli.errors import DuvaeError
from duvae_cli.io import atomic_path, atomic_write_text, sha256_bytes, write_error
from duvae_cli.train.config import TrainConfig, typed_values


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
    (name / "checkpoints").mkdir()
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


def save_checkpoint(path: Path, payload: dict) -> None:
    with atomic_path(path) as tmp:
        try:
            torch.save(payload, tmp)
        except RuntimeError as exc:  # torch reports a full disk as "[enforce fail at ...] unexpected pos"
            raise write_error(path, OSError(0, f"write failed, disk full? ({str(exc).splitlines()[0][:80]})")) from None


def load_checkpoint(path: Path, device: str | torch.device = "cpu", source=None) -> dict:
    """The checkpoint at `path` (read from `source`, a file object of its bytes, when given)."""
    if not path.exists():
        raise DuvaeError(f"{path}: no such checkpoint")
    try:
        return torch.load(path if source is None else source, map_location=device, weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported the same way
        raise DuvaeError(f"{path}: not a readable duvae checkpoint ({type(exc).__name__})") from None


def load_checkpoint_hashed(path: Path, device: str | torch.device = "cpu") -> tuple[dict, str]:
    """The checkpoint and the sha256 of exactly the bytes it was loaded from, so that numbers are
    never filed under a newer file that replaced it while it was read (tables/fresh.py)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DuvaeError(f"{path}: no such checkpoint") from None
    except OSError as exc:  # a directory, no permission, an I/O error
        raise DuvaeError(f"{path}: not a readable duvae checkpoint ({type(exc).__name__})") from None
    return load_checkpoint(path, device, io.BytesIO(data)), sha256_bytes(data)


def read_config(run_dir: Path) -> TrainConfig:
    path = run_dir / "config.json"
    if not path.exists():
        raise DuvaeError(f"{run_dir}: not a duvae run directory (no config.json)")
    data = read_json(path)
    # Flat, named fields; a field added since the run was made takes its default (the old behaviour).
    # Types are checked, ranges are not: a run is reloaded as it was made.
    data.setdefault("precision", "fp32")  # runs from before `auto` existed trained in fp32
    return TrainConfig(**typed_values(data, f"{path}: ", DuvaeError))


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


@dataclass
class Trained:
    """A trained model loaded back from its run directory, in eval mode."""

    run_dir: Path
    config: TrainConfig
    model: torch.nn.Module
    dataset: object  # duvae_cli.data.store.TextDataset | ImageDataset
    checkpoint: Path
    checkpoint_sha256: str
    data_notes: tuple = ()  # where the data was found (data/locate.py), each split changed since training


def load_trained(run_dir: Path, checkpoint: str = "best", device: str = "cpu",
                 data_root: str | Path | None = None) -> Trained:
    """Reload the model of a run (`best` or `last` checkpoint) and the dataset it was trained on (a
    moved run: the same data under `data_root`, its config's data_root or data/; data/locate.py)."""
    from duvae_cli.data.locate import data_roots, run_dataset
    from duvae_cli.train.build import build_model
    from duvae_cli.train.selfcheck import check_checkpoint

    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise DuvaeError(f"{run_dir}: no such run directory")
    run_dir = run_dir.resolve()
    if checkpoint not in ("best", "last"):
        raise DuvaeError(f"--checkpoint {checkpoint!r}: choose best or last")
    config = read_config(run_dir)
    info = read_json(run_dir / "manifest.json")
    roots = data_roots(data_root, config.data_root)
    dataset, found = run_dataset(run_dir, info.get("data_path"), config.dataset, roots)  # found: a note or None
    notes = [*filter(None, [found]), *binding.check(run_dir, dataset)]  # a different vocabulary stops here
    path = run_dir / "checkpoints" / f"{checkpoint}.pt"
    state, sha256 = load_checkpoint_hashed(path, device)
    check_checkpoint(state, config, path)  # config.json agrees with the checkpoint; finite weights
    model = build_model(config, dataset).to(device)
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError) as exc:  # torch's message lists every tensor: keep its first line
        raise DuvaeError(f"{path}: does not fit the model of {run_dir / 'config.json'} and "
                         f"{dataset.path} ({str(exc).splitlines()[0][:200]})") from None
    model.eval()
    return Trained(run_dir, config, model, dataset, path, sha256, tuple(notes))


def read_run_summary(run_dir: Path) -> dict:
    """What `duvae train` prints: the run directory, its config, and the last epoch's row."""
    import csv

    run_dir = Path(run_dir)
    rows = list(csv.DictReader((run_dir / "history.csv").open(encoding="utf-8")))
    final = {k: (float(v) if k not in ("epoch", "step", "val_au") else int(float(v))) for k, v in rows[-1].items()}
    info = read_json(run_dir / "manifest.json")
    return {"run_dir": str(run_dir), "config": read_config(run_dir).to_dict(), "final": final,
            "best_val_loss": info.get("best_val_loss"), "epochs_done": info.get("epochs_done")}
