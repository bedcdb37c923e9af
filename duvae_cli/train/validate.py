"""The per-epoch validation pass: ELBO, KL, MI (whole-set; optionally also He et al.'s per-batch
estimate) and AU on a split, in eval mode.

Deterministic: batches in length order and z drawn from a generator seeded by the caller, so the
training RNG stream is never touched (resume stays exact).
"""

from __future__ import annotations

import numpy as np
import torch

from duvae_cli.metrics.passes import posterior_pass
from duvae_cli.metrics.posterior import active_units, mi_per_batch, mi_whole_set
from duvae_cli.models.gaussian import sample


def validate(model, data, batch_size: int, seed: int, device, kl_weight: float = 1.0,
             mi_batch_size: int | None = None) -> dict:
    """Validation metrics of `data` (a batch source, see batching.py). `kl_weight`: the training's
    current weight, for the posterior hook only (as the reference validates). With `mi_batch_size`,
    also `mi_batch`: He et al.'s per-batch MI over the split's evaluation-order batches of that size
    (the same z as `mi`), which Agg-VAE's stop rule reads."""
    generator = torch.Generator(device=device).manual_seed(seed)
    out = posterior_pass(model, data, batch_size, generator, kl_weight)
    mi_generator = torch.Generator().manual_seed(seed + 1)
    z = sample(out["mean"].double(), out["logvar"].double(), generator=mi_generator)  # one z per example
    nll = out["rec"] + out["kl"]
    au, _ = active_units(out["mean"])
    metrics = {
        "loss": float(nll.mean()), "rec": float(out["rec"].mean()), "kl": float(out["kl"].mean()),
        "mi": mi_whole_set(out["mean"], out["logvar"], z), "au": au,
        "ppl": _perplexity(float(nll.sum()), int(out["n_tokens"].sum())),
        "kl_per_dim": out["kl_dims"].double().mean(0),  # (D,) nats; logged as a histogram
    }
    if mi_batch_size:
        batches = [torch.from_numpy(b) for b in data.plan(mi_batch_size)]
        metrics["mi_batch"] = mi_per_batch(out["mean"], out["logvar"], z, batches)
    return metrics


def _perplexity(total_nll: float, tokens: int) -> float:
    """exp(total NLL / predicted tokens); NaN for data without tokens (images: PPL is text-only)."""
    return float(np.exp(total_nll / tokens)) if tokens > 0 else float("nan")
