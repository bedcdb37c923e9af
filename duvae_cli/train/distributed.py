"""Data-parallel training and sharded evaluation under torchrun (docs/distributed.md).

`torchrun --nproc-per-node N -m duvae_cli train ...` starts N copies of duvae with RANK, WORLD_SIZE
and LOCAL_RANK set; `join()` joins them (gloo on the CPU, nccl on CUDA) and `world()` says who
this process is. Outside torchrun `world()` is a world of one and nothing here runs, so the
single-process path stays bit-identical.

The contract, in one place:

- Batches: every rank makes the same global plan (length-bucketed, from the shared seed) and the
  same global batches, and trains on contiguous shard `rank` of each (`shard_bounds`), so
  `batch_size` is the *global* batch.
  A global batch of n splits into shards of floor(n/N) or ceil(n/N); a plan's last batch smaller
  than 2N joins the previous one (`min_batch`), so every BatchNorm shard has >= 2 examples.
- Gradients: DDP averages the ranks' gradients, so each rank scales its shard mean by n_r N / n and
  the average is the gradient of the global batch mean, exactly as one process with batch n.
- BatchNorm (on the posterior means, and in the image encoders) uses the statistics of the global
  batch (`GlobalBatchNorm`; torch.nn.SyncBatchNorm refuses CPU tensors in torch 2.13).
- Noise: the reparameterisation eps of a global batch is drawn on every rank from one shared
  generator and sliced, so it equals one process's draw; dropout masks, DU's variance dropout and
  image binarisation come from per-rank generators seeded by (seed, rank). Training is therefore
  exactly the single-process computation (to float rounding) when those masks are off, and
  statistically the same otherwise.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import inspect
import os
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from duvae_cli.errors import UsageError
from duvae_cli.train.global_bn import GlobalBatchNorm, convert_batch_norm

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


def check_config(config, here: World) -> None:
    """What data-parallel training supports; one-line usage errors otherwise."""
    if not here.active:
        return
    strategy = getattr(config, "strategy", "standard")
    if strategy != "standard":
        raise UsageError(f"--strategy {strategy}: torchrun training supports only the standard strategy "
                         "(aggressive and savi updates are not sharded); run it in one process")
    if config.batch_size < here.min_batch():
        raise UsageError(f"--batch-size {config.batch_size}: with {here.size} processes the global batch "
                         f"must be >= {here.min_batch()} (BatchNorm needs 2 examples per process)")


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


def take_rows(batch, start: int, stop: int):
    """Rows [start, stop) of a batch: an image tensor (B, ...) or a NamedTuple of (B, ...) tensors
    (TextBatch)."""
    if isinstance(batch, torch.Tensor):
        return batch[start:stop]
    return type(batch)(*(part[start:stop] for part in batch))


def sync_from_main(module: nn.Module) -> None:
    """Overwrite every rank's parameters and buffers with rank 0's (after a reload of best.pt,
    which only rank 0 is sure to see on a multi-node run). No-op in a world of one."""
    if not world().active:
        return
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor, src=0)


def rank_seed(seed: int, rank: int, step: int) -> int:
    """The seed of rank `rank`'s own torch stream (dropout masks, DU dropout, binarisation)."""
    return int(np.random.SeedSequence([seed, rank, step]).generate_state(1, np.uint64)[0])


# --- the data-parallel model -------------------------------------------------------------------

class DataParallelVAE:
    """The VAE under DistributedDataParallel, called like the VAE on this rank's shard of a global
    batch. Its output is that of the *global* batch: `loss` has the global batch mean as its value
    (every rank agrees on it, also on a non-finite one) and the scaled shard mean's gradient; `rec`,
    `kl` and `kl_term` are the (n,) values of all shards in global order. `mean`, `logvar`, `z` and
    `log_q` stay the shard's.

    `rng` (a checkpoint's "rng" entry) restores the shared noise stream and, when the world size is
    unchanged, every rank's own stream; else the shared stream continues from torch's current
    state (a single-process checkpoint's eps stream) and the own streams start from (seed, rank, step)."""

    def __init__(self, model: nn.Module, here: World, latent_dim: int, seed: int, rng: dict | None = None,
                 step: int = 0):
        self.module, self.world, self.latent_dim = convert_batch_norm(model), here, latent_dim
        device = next(model.parameters()).device
        cuda = device.type == "cuda"
        self.ddp = DistributedDataParallel(model, device_ids=[device.index] if cuda else None,
                                           **_no_buffer_broadcast())  # buffers: global statistics
        self.noise = torch.Generator()  # the shared eps stream, identical on every rank
        self.noise.set_state(rng["shared"] if rng and "shared" in rng else torch.get_rng_state())
        ranks, cuda_ranks = (rng or {}).get("ranks"), (rng or {}).get("cuda_ranks")
        if ranks is not None and len(ranks) == here.size:
            torch.set_rng_state(ranks[here.rank])
            if cuda and cuda_ranks is not None:
                torch.cuda.set_rng_state(cuda_ranks[here.rank].cpu())
        else:
            torch.manual_seed(rank_seed(seed, here.rank, step))  # every device's generator

    def __call__(self, batch, kl_weight: float = 1.0):
        """`batch`: the whole global batch (every rank makes the same one); this rank trains on its
        contiguous shard of it."""
        total, device = len(batch), next(self.module.parameters()).device
        sizes = [stop - start for start, stop in (shard_bounds(total, World(r, self.world.size))
                                                  for r in range(self.world.size))]
        start, stop = shard_bounds(total, self.world)
        eps = torch.randn((total, self.latent_dim), generator=self.noise)[start:stop]  # (n, D)
        out = self.ddp(take_rows(batch, start, stop), kl_weight, eps=eps.to(device))
        n = stop - start
        stats = torch.stack([out.rec, out.kl, out.kl_term], 1).detach()
        rows = gather_rows(stats.to(torch.promote_types(stats.dtype, torch.float32)), sizes)
        rec, kl, kl_term = rows.unbind(1)  # (total,) each, global batch order
        scaled = out.loss * (n * self.world.size / total)  # DDP averages: sum_r n_r/n grad(mean_r)
        loss = (rec + kl_weight * kl_term).mean() + (scaled - scaled.detach())
        self._bn_diagnostic()
        return dataclasses.replace(out, loss=loss, rec=rec, kl=kl, kl_term=kl_term)

    def _bn_diagnostic(self) -> None:
        """The logged pre-BN variance of the means is that of the global batch too."""
        means_bn = getattr(self.module.regularizer, "bn", None)
        inner = getattr(means_bn, "bn", None)
        if isinstance(inner, GlobalBatchNorm) and inner.last_global_var is not None:
            means_bn.last_batch_var = inner.last_global_var

    def parameters(self):
        return self.module.parameters()

    def after_step(self) -> None:
        self.module.after_step()  # DU's rescaling: same weights on every rank -> same result

    def rng_state(self) -> dict:
        """The checkpoint's "rng" entry (collective: every rank must call it): "torch" is the shared
        eps stream (what a single-process resume continues), "ranks" every rank's own stream."""
        state = {"torch": self.noise.get_state(), "shared": self.noise.get_state(),
                 "ranks": all_gather_object(torch.get_rng_state()), "world_size": self.world.size}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
            state["cuda_ranks"] = all_gather_object(torch.cuda.get_rng_state())  # this rank's GPU
        return state


def _no_buffer_broadcast() -> dict:
    """Rank 0's buffers are copied once at construction; after that every rank's BN running
    statistics are updated from the same global statistics, so no per-step broadcast is needed
    (`forward_sync_buffers` from torch 2.13 on, `broadcast_buffers` before)."""
    parameters = inspect.signature(DistributedDataParallel.__init__).parameters
    return {"forward_sync_buffers" if "forward_sync_buffers" in parameters else "broadcast_buffers": False}


def replicate(model: nn.Module, here: World, config, rng: dict | None = None, step: int = 0):
    """What the loop trains through: the model itself in a world of one, else a DataParallelVAE."""
    if not here.active:
        return model
    return DataParallelVAE(model, here, config.latent_dim, config.seed, rng, step)


def checkpoint_rng(runner) -> dict | None:
    """The "rng" entry for a checkpoint under DDP (collective); None in a world of one."""
    return runner.rng_state() if isinstance(runner, DataParallelVAE) else None
