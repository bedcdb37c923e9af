"""The device a command runs on: `resolve_device`, the one place `--device` is read."""

from __future__ import annotations

import torch

from duvae_cli.errors import UsageError

DEVICES = "auto, cpu, cuda or cuda:N"


def resolve_device(name: str) -> torch.device:
    """`--device` (auto, cpu, cuda or cuda:N) as a torch device; a device this machine does not have
    is a usage error (exit 2), found before any file is read."""
    name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name != "cpu" and not (name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit())):
        raise UsageError(f"--device {name!r}: choose {DEVICES}")
    if name.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise UsageError(f"--device {name}: CUDA is not available on this machine")
        if name != "cuda" and int(name[5:]) >= count:
            raise UsageError(f"--device {name}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    return torch.device(name)
