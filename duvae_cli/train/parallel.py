"""Data-parallel training under torchrun (docs/distributed.md): the model trained through
DistributedDataParallel on each rank's shard of every global batch.

The contract, in one place:

- Batches: every rank makes the same global plan (length-bucketed, from the shared seed) and the
  same global batches, and trains on contiguous shard `rank` of each (`runtime.distributed.shard_bounds`),
  so `batch_size` is the *global* batch. A global batch of n splits into shards of floor(n/N) or
  ceil(n/N); a plan's last batch smaller than 2N joins the previous one (`World.min_batch`), so every
  BatchNorm shard has >= 2 examples.
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

import dataclasses
import inspect

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from duvae_cli.data.batching import take_rows
from duvae_cli.errors import UsageError
from duvae_cli.methods import STRATEGIES, single_process_parts
from duvae_cli.options import either
from duvae_cli.runtime.distributed import World, all_gather_object, gather_rows, shard_bounds
from duvae_cli.train.global_bn import GlobalBatchNorm, convert_batch_norm


def check_config(config, here: World) -> None:
    """What data-parallel training supports; one-line usage errors otherwise."""
    if not here.active:
        return
    for flag, name in single_process_parts(config.model, config.flow, config.strategy):  # capabilities
        if flag == "--strategy":  # name the strategies that do shard
            sharded = [other for other, cls in STRATEGIES.items() if cls.capabilities.multi_process]
            raise UsageError(f"--strategy {config.strategy}: torchrun training supports only the {either(sharded)} "
                             f"strateg{'y' if len(sharded) == 1 else 'ies'} (the others' updates are not "
                             "sharded); run it in one process")
        raise UsageError(f"{flag} {name}: torchrun training does not support it; run it in one process")
    if config.batch_size < here.min_batch():
        raise UsageError(f"--batch-size {config.batch_size}: with {here.size} processes the global batch "
                         f"must be >= {here.min_batch()} (BatchNorm needs 2 examples per process)")


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
        out = self.ddp(take_rows(batch, slice(start, stop)), kl_weight, eps=eps.to(device))
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
        norm = self.module.regularizer.means_norm()
        inner = None if norm is None else norm.bn
        if isinstance(inner, GlobalBatchNorm) and inner.last_global_var is not None:
            norm.last_batch_var = inner.last_global_var

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
