"""Checkpoints: written atomically, read back whole; `load_checkpoint_hashed` also gives the sha256 of
exactly the bytes it read (what metrics.csv rows name)."""

from __future__ import annotations

import io
from pathlib import Path

import torch

from duvae_cli.errors import DuvaeError
from duvae_cli.io import atomic_path, sha256_bytes, write_error


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
