"""The runtime of a command, decided once at its start and passed down as one frozen object: the
device, the training precision (with the reason `auto` chose it), the thread count and this
process's place among torchrun's processes. Nothing below a command resolves any of them again.

    runtime = decide(device="auto", precision="auto", parity=(True, "measured"))
    model.to(runtime.device)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from duvae_cli.runtime.device import resolve_device
from duvae_cli.runtime.distributed import World, world
from duvae_cli.runtime.precision import choose_precision


@dataclass(frozen=True)
class Runtime:
    device: torch.device  # this process's device (under torchrun: cuda:LOCAL_RANK for cuda)
    precision: str = "fp32"  # fp32, bf16 or fp16: how training runs (evaluation is always fp32)
    precision_reason: str = "as asked"  # why (`auto`'s choice, or "as asked")
    threads: int = 1  # torch's intra-op threads
    world: World = World()

    @property
    def is_main(self) -> bool:
        return self.world.is_main


def decide(device: str = "auto", precision: str = "fp32", parity: tuple[bool, str] = (False, "")) -> Runtime:
    """The runtime for `--device` and `--precision`; `parity`: whether the model's bf16 training is
    measured within seed noise, and why not (methods.bf16_parity), which `auto` reads."""
    here = world()
    resolved = here.device(resolve_device(device))
    name, why = choose_precision(precision, resolved, parity)
    return Runtime(resolved, name, why, torch.get_num_threads(), here)


def as_device(device) -> torch.device:
    """The device a library entry point runs on: a `Runtime`'s or a `torch.device` as decided by the
    command that called it; a `--device` name (a library caller's) is decided here, once."""
    if isinstance(device, Runtime):
        return device.device
    if isinstance(device, torch.device):
        return device
    return decide(device=device).device


__all__ = ["Runtime", "World", "as_device", "decide", "resolve_device"]
