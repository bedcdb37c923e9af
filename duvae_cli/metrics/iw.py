"""Importance-weighted log-likelihood (Burda et al. 2016; reference-spec §5), batched and chunked.

For example x with posterior q(z|x) = N(mu, sigma^2) and z_k = mu + sigma eps_k, k = 1..K:

    log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x)
    log p(x) >= log (1/K) sum_k w_k = logsumexp_k(log w_k) - log K        (the IW bound, -> log p(x))

- The noise eps (K, D) of an example is a function of (evaluation seed, example index) alone, so
  the numbers do not depend on the batch size, the chunking or the order of evaluation.
- The encoder runs once per example; the K samples of many examples are scored together in chunks
  of (example x sample) rows sized to a memory budget (`plan_chunks`). An example whose K samples
  do not fit in one chunk is split over several; its K log-weights are still combined by one
  logsumexp, in float64.
- With an IAF posterior, z_k = flow(mu + sigma eps_k) and log q(z_k|x) is the flow's density
  (log N(z0) minus the log gates; methods/iaf.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from duvae_cli.data.batching import take_rows
from duvae_cli.errors import DuvaeError
from duvae_cli.models.gaussian import LOG_2PI, draw


def example_noise(seed: int, index: int, n_samples: int, latent_dim: int) -> torch.Tensor:
    """Standard-normal noise (K, D) for example `index`: a hash of (seed, index) seeds its own
    generator, so neighbouring indices get unrelated streams. float32, on the CPU."""
    high, low = np.random.SeedSequence([seed, index]).generate_state(2, np.uint32)
    generator = torch.Generator().manual_seed((int(high) << 32) | int(low))
    return torch.randn(n_samples, latent_dim, generator=generator)


class BatchNoise:
    """The noise of a batch, eps (B, K, D), made per example on demand: `noise[rows, samples]` ->
    (e, s, D) for slices of batch positions and sample indices. Only the (K, D) noise of one
    example is held at a time beyond the slice returned, so memory does not grow with B x K."""

    def __init__(self, seed: int, indices, n_samples: int, latent_dim: int):
        self.seed, self.indices = seed, [int(i) for i in indices]
        self.shape = (len(self.indices), n_samples, latent_dim)
        self._cached: tuple[int, torch.Tensor] | None = None

    def _example(self, position: int) -> torch.Tensor:
        if self._cached is None or self._cached[0] != position:
            _, k, d = self.shape
            self._cached = (position, example_noise(self.seed, self.indices[position], k, d))
        return self._cached[1]

    def __getitem__(self, key: tuple[slice, slice]) -> torch.Tensor:
        rows, samples = key
        return torch.stack([self._example(p)[samples] for p in range(*rows.indices(self.shape[0]))])


@dataclass(frozen=True)
class Chunk:
    examples: slice  # positions within the batch
    samples: slice  # sample indices 0..K-1


def plan_chunks(n_examples: int, n_samples: int, fits, max_rows: int) -> list[Chunk]:
    """Cover (examples x samples) with chunks of at most `max_rows` rows for which `fits(rows,
    examples)` holds: whole examples when one example's K samples fit, else sample slices."""
    per_chunk = _largest(lambda e: e * n_samples <= max_rows and fits(e * n_samples, e), n_examples)
    if per_chunk >= 1:
        return [Chunk(slice(s, min(s + per_chunk, n_examples)), slice(0, n_samples))
                for s in range(0, n_examples, per_chunk)]
    rows = _largest(lambda r: r <= max_rows and fits(r, 1), n_samples)
    if rows < 1:
        raise DuvaeError("--memory-budget is too small to score even one sample of the longest "
                         "sentence in a batch; raise it")
    return [Chunk(slice(e, e + 1), slice(s, min(s + rows, n_samples)))
            for e in range(n_examples) for s in range(0, n_samples, rows)]


def _largest(predicate, high: int) -> int:
    """Largest n in [0, high] with predicate(n), for a predicate true up to some n, false after."""
    low = 0
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if predicate(mid) else (low, mid - 1)
    return low


@dataclass
class BatchWeights:
    log_weights: torch.Tensor  # (B, K) float64, log w_k
    log_likelihood: torch.Tensor  # (B, K) float64, log p(x | z_k)
    kl_per_dim: torch.Tensor | None = None  # (B, D) float64, mean_k of log q(z_k|x)_d - log p(z_kd) (flow)

    def iw_log_likelihood(self) -> torch.Tensor:
        """(B,) float64: logsumexp_k log w_k - log K."""
        return torch.logsumexp(self.log_weights, dim=1) - math.log(self.log_weights.shape[1])


def importance_weights(scorer, batch, mean: torch.Tensor, logvar: torch.Tensor,
                       noise, chunks: list[Chunk], flow=None,
                       context: torch.Tensor | None = None) -> BatchWeights:
    """Log-weights for a batch. mean, logvar (B, D) from the encoder; noise (B, K, D): a tensor or
    a `BatchNoise`. With a `flow` (and the encoder's `context` (B, C)) the samples are pushed
    through it, and the per-dimension Monte Carlo KL over the K samples is returned too."""
    n_examples, n_samples, dim = noise.shape
    log_w = torch.empty(n_examples, n_samples, dtype=torch.float64)
    log_lik = torch.empty_like(log_w)
    kl_sum = None if flow is None else torch.zeros(n_examples, dim, dtype=torch.float64)
    for chunk in chunks:
        rows, cols = chunk.examples, chunk.samples
        eps = noise[rows, cols].to(mean.device)  # (e, s, D)
        z, log_q = draw(mean[rows].unsqueeze(1), logvar[rows].unsqueeze(1), eps, torch.float64)  # (e, s, D)
        if flow is not None:  # log q(zT|x) = log N(z0; mu, sigma^2) - sum of log gates
            z, log_q = flow(z, context[rows].unsqueeze(1), log_q)
        log_px = scorer(take_rows(batch, rows), z).double().cpu()  # (e, s)
        log_prior = -0.5 * (LOG_2PI + z.double().pow(2))  # (e, s, D)
        if kl_sum is not None:
            kl_sum[rows] += (log_q - log_prior).sum(1).cpu()
        log_lik[rows, cols] = log_px
        log_w[rows, cols] = log_px + (log_prior.sum(-1) - log_q.sum(-1)).cpu()
    return BatchWeights(log_w, log_lik, None if kl_sum is None else kl_sum / n_samples)
