"""The per-epoch validation pass: ELBO, KL, MI (whole-set) and AU on a split, in eval mode.

Deterministic: batches in length order and z drawn from a generator seeded by the caller, so the
training RNG stream is never touched (resume stays exact).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from duvae_cli.models.gaussian import LOG_2PI, log_normal, sample


@torch.no_grad()
def posterior_pass(model, data, batch_size: int, generator: torch.Generator, device) -> dict:
    """One sample per example: per-example rec and KL (analytic; one-sample Monte Carlo with a flow),
    the (base) posterior parameters, token counts."""
    model.eval()
    order, recs, kls, means, logvars, tokens = [], [], [], [], [], []
    for indices in data.plan(batch_size):
        batch = data.batch(indices).to(device)
        posterior = model.encode(batch, kl_weight=1.0)
        mean, logvar = posterior.mean, posterior.logvar
        eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
        z, log_q = model.draw(posterior, eps)
        recs.append(-model.decoder.log_prob(batch, z))
        kls.append(model.kl_per_dim(posterior, z, log_q).sum(-1))
        means.append(mean), logvars.append(logvar)
        no_tokens = torch.zeros(len(indices), dtype=torch.long)  # images: PPL is text-only
        tokens.append(getattr(batch, "n_predicted", no_tokens))
        order.append(torch.from_numpy(indices))
    inverse = torch.argsort(torch.cat(order))  # back to dataset order
    cat = lambda parts: torch.cat(parts).cpu()[inverse]  # noqa: E731
    return dict(rec=cat(recs), kl=cat(kls), mean=cat(means), logvar=cat(logvars), n_tokens=cat(tokens))


def mutual_information(mean: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator,
                       chunk: int = 256) -> float:
    """Whole-set MI estimate (reference-spec §5): E[log q(z|x)] - E[log q(z)], one z_i per example,
    q(z_i) = mean over all N examples j of q(z_i | x_j) (j = i included)."""
    n, dim = mean.shape
    neg_entropy = (-0.5 * dim * LOG_2PI - 0.5 * (1 + logvar).sum(-1)).mean()
    z = sample(mean, logvar, generator=generator)  # (N, D)
    log_qz = []
    for start in range(0, n, chunk):
        zi = z[start: start + chunk].unsqueeze(1)  # (C, 1, D)
        log_density = log_normal(zi, mean.unsqueeze(0), logvar.unsqueeze(0))  # (C, N)
        log_qz.append(torch.logsumexp(log_density, dim=1) - math.log(n))
    return float(neg_entropy - torch.cat(log_qz).mean())


def active_units(mean: torch.Tensor, threshold: float = 0.01) -> tuple[int, torch.Tensor]:
    """Dimensions whose posterior-mean variance over the set (N-1) is >= threshold, and the variances."""
    variance = mean.var(0, unbiased=True)
    return int((variance >= threshold).sum()), variance


def validate(model, data, batch_size: int, seed: int, device) -> dict:
    """Validation metrics of `data` (a batch source, see batching.py)."""
    generator = torch.Generator(device=device).manual_seed(seed)
    out = posterior_pass(model, data, batch_size, generator, device)
    mi_generator = torch.Generator().manual_seed(seed + 1)
    nll = out["rec"] + out["kl"]
    au, _ = active_units(out["mean"])
    return {
        "loss": float(nll.mean()), "rec": float(out["rec"].mean()), "kl": float(out["kl"].mean()),
        "mi": mutual_information(out["mean"].double(), out["logvar"].double(), mi_generator), "au": au,
        "ppl": _perplexity(float(nll.sum()), int(out["n_tokens"].sum())),
    }


def _perplexity(total_nll: float, tokens: int) -> float:
    """exp(total NLL / predicted tokens); NaN for data without tokens (images: PPL is text-only)."""
    return float(np.exp(total_nll / tokens)) if tokens > 0 else float("nan")
