"""This process's place under torchrun, and the collectives the rest of duvae uses (docs/distributed.md).

`torchrun --nproc-per-node N -m duvae_cli train ...` starts N copies of duvae with RANK, WORLD_SIZE
and LOCAL_RANK set; `join()` joins them (gloo on the CPU, nccl on CUDA) and `world()` says who
this process is. Outside torchrun `world()` is a world of one and nothing here runs, so the
single-process path stays bit-identical. Data-parallel training itself (the sharded model, its
noise and BatchNorm contract) is train/parallel.py; sharded evaluation is metrics/sharding.py.
"""

from __future__ import annotations

import atexit
import contextlib
import os
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (a world of one outside torchrun)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 alone logs, prints and writes files."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1

    def device(self, device: torch.device) -> torch.device:
        """One GPU per process: `cuda` means cuda:LOCAL_RANK under torchrun; the CPU stays the CPU."""
        if self.active and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device

    def min_batch(self) -> int:
        """The smallest global batch the plan may hold: 2 examples per shard (BatchNorm)."""
        return 2 * self.size


def launched_by_torchrun() -> bool:
    return all(name in os.environ for name in TORCHRUN_VARIABLES)


def world() -> World:
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return World()


def join() -> World:
    """Join torchrun's process group (once; left at exit) and return this process's place; a world
    of one outside torchrun. Rendezvous (MASTER_ADDR/PORT, multi-node) is torchrun's, read by the
    env:// method. Backend: gloo on a CPU-only machine; with CUDA, nccl for CUDA tensors and gloo for
    CPU ones (so `--device cpu` works there too)."""
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) == 1 or dist.is_initialized():
        return world()
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group("cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo")
    atexit.register(leave)
    return world()


def leave() -> None:
    """Leave the group together: a rank that destroys its group while a peer is still in the last
    collective leaves gloo threads behind that abort the process at exit ("terminate called without
    an active exception", seen in about 1 run in 3 on torch 2.13). The barrier is bounded, so a rank
    whose peer has died still exits."""
    if dist.is_available() and dist.is_initialized():
        with contextlib.suppress(Exception):
            dist.monitored_barrier(timeout=timedelta(seconds=60))
        dist.destroy_process_group()


# --- sharding and collectives -------------------------------------------------------------------

def shard_bounds(n: int, here: World) -> tuple[int, int]:
    """Rows [start, stop) of a global batch of n that rank `here.rank` takes: contiguous shards whose
    sizes differ by at most one, the larger ones first (numpy.array_split's rule)."""
    base, extra = divmod(n, here.size)
    start = here.rank * base + min(here.rank, extra)
    return start, start + base + (here.rank < extra)


def shard(indices: np.ndarray, here: World) -> np.ndarray:
    """This rank's indices of a global batch (what `DataParallelVAE` trains on)."""
    start, stop = shard_bounds(len(indices), here)
    return indices[start:stop]


def all_gather_object(value):
    """Every rank's `value`, in rank order, on every rank (pickled; for small or rare payloads)."""
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, value)
    return out


def broadcast_object(value):
    """Rank 0's `value` on every rank (identity in a world of one)."""
    if not world().active:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@contextlib.contextmanager
def main_first(here: World):
    """Rank 0 runs the body first (e.g. prepares a missing dataset), the other ranks after it."""
    if here.active and not here.is_main:
        dist.barrier()
    try:
        yield
    finally:
        if here.active and here.is_main:
            dist.barrier()


def run_on_main(fn, *args, **kwargs):
    """`fn(...)` on rank 0 only (e.g. creating the run directory); its result, or its exception
    re-raised, on every rank, so a failure there cannot leave the others waiting."""
    if not world().active:
        return fn(*args, **kwargs)
    outcome, error = None, None
    if world().is_main:
        try:
            outcome = ("ok", fn(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001 - handed to every rank, then raised
            outcome, error = ("error", exc), exc
    outcome = broadcast_object(outcome)
    if error is not None:
        raise error
    if outcome[0] == "error":
        raise outcome[1]
    return outcome[1]


def gather_rows(rows: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """Concatenate every rank's (n_r, ...) rows in rank order (no gradient): pad to the largest
    n_r, all_gather, trim. `sizes` are the n_r, known to every rank."""
    padded = rows.new_zeros((max(sizes), *rows.shape[1:]))
    padded[: len(rows)] = rows
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    return torch.cat([part[:n] for part, n in zip(parts, sizes)])


def sync_from_main(module: nn.Module) -> None:
    """Overwrite every rank's parameters and buffers with rank 0's (after a reload of the best checkpoint,
    which only rank 0 is sure to see on a multi-node run). No-op in a world of one."""
    if not world().active:
        return
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor, src=0)
