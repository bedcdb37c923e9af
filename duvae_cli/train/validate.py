"""The per-epoch validation pass: ELBO, KL, MI (whole-set; optionally also He et al.'s per-batch
estimate) and AU on a split, in eval mode.

Deterministic: batches in length order and z drawn from a generator seeded by the caller, so the
training RNG stream is never touched (resume stays exact).
"""

from __future__ import annotations


import numpy as np
import torch

from duvae_cli.metrics.posterior import active_units, mi_per_batch, mi_whole_set
from duvae_cli.models.gaussian import sample


@torch.no_grad()
def posterior_pass(model, data, batch_size: int, generator: torch.Generator, device,
                   kl_weight: float = 1.0) -> dict:
    """One sample per example: per-example rec and KL (analytic; one-sample Monte Carlo with a flow),
    the (base) posterior parameters, token counts. `kl_weight` reaches only the regularizer's
    posterior hook (DU's floor is gated on it); the loss is the ELBO (weight 1) regardless."""
    model.eval()
    order, recs, kls, means, logvars, tokens = [], [], [], [], [], []
    for indices in data.plan(batch_size):
        batch = data.batch(indices).to(device)
        posterior = model.encode(batch, kl_weight=kl_weight)
        mean, logvar = posterior.mean, posterior.logvar
        eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
        z, log_q = model.draw(posterior, eps)
        recs.append(-model.decoder.log_prob(batch, z))
        kls.append(model.kl_per_dim(posterior, z, log_q))  # (B, D)
        means.append(mean), logvars.append(logvar)
        no_tokens = torch.zeros(len(indices), dtype=torch.long)  # images: PPL is text-only
        tokens.append(getattr(batch, "n_predicted", no_tokens))
        order.append(torch.from_numpy(indices))
    inverse = torch.argsort(torch.cat(order))  # back to dataset order
    cat = lambda parts: torch.cat(parts).cpu()[inverse]  # noqa: E731
    kl_dims = cat(kls)  # (N, D)
    return dict(rec=cat(recs), kl=kl_dims.sum(-1), kl_dims=kl_dims, mean=cat(means), logvar=cat(logvars),
                n_tokens=cat(tokens))


def validate(model, data, batch_size: int, seed: int, device, kl_weight: float = 1.0,
             mi_batch_size: int | None = None) -> dict:
    """Validation metrics of `data` (a batch source, see batching.py). `kl_weight`: the training's
    current weight, for the posterior hook only (as the reference validates). With `mi_batch_size`,
    also `mi_batch`: He et al.'s per-batch MI over the split's evaluation-order batches of that size
    (the same z as `mi`), which Agg-VAE's stop rule reads."""
    generator = torch.Generator(device=device).manual_seed(seed)
    out = posterior_pass(model, data, batch_size, generator, device, kl_weight)
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
