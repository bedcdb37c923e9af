"""The pass over a split that validation and evaluation share: the examples in evaluation order
(batches of nearly one length, `plan_batches`), each batch encoded once, and per-example results
put back in dataset order. What is scored per batch is the caller's: one z per example for
validation (train/validate.py), K importance samples for evaluation (evaluate.py).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from duvae_cli.data.batching import plan_batches


def encoded_batches(model, examples, batch_size: int, kl_weight: float = 1.0,
                    among: np.ndarray | None = None) -> Iterator[tuple[np.ndarray, object, object]]:
    """(indices, batch, posterior) for every batch of `examples` (a batch source with `lengths` and
    `batch(indices)`, data/batching.py), or of the example indices `among` only. The model is used
    as it is (the caller sets eval mode and gradients); `kl_weight` reaches only the regularizer's
    posterior hook (DU's floor is gated on it)."""
    device = next(model.parameters()).device
    among = np.arange(len(examples)) if among is None else np.asarray(among)
    for positions in plan_batches(np.asarray(examples.lengths)[among], batch_size):
        indices = among[positions]
        batch = examples.batch(indices).to(device)
        yield indices, batch, model.encode(batch, kl_weight=kl_weight)


def put(results: dict, index: np.ndarray, part: dict, total: int) -> None:
    """Scatter one batch's per-example rows (numpy arrays or CPU tensors) into dataset-order arrays
    of `total` rows, allocated on first use."""
    for name, values in part.items():
        if name not in results:
            shape = (total, *values.shape[1:])
            results[name] = (torch.zeros(shape, dtype=values.dtype) if isinstance(values, torch.Tensor)
                             else np.zeros(shape, dtype=values.dtype))
        results[name][torch.from_numpy(index) if isinstance(values, torch.Tensor) else index] = values


@torch.no_grad()
def posterior_pass(model, data, batch_size: int, generator: torch.Generator, kl_weight: float = 1.0) -> dict:
    """One sample per example (the evaluation pass with one z, from `generator` in evaluation order):
    per-example rec and KL (analytic; one-sample Monte Carlo with a flow), the (base) posterior
    parameters, token counts, in dataset order. The loss is the ELBO (weight 1) whatever `kl_weight`."""
    model.eval()
    out = {}
    for indices, batch, posterior in encoded_batches(model, data, batch_size, kl_weight):
        mean, logvar = posterior.mean, posterior.logvar
        eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
        z, log_q = model.draw(posterior, eps)
        no_tokens = torch.zeros(len(indices), dtype=torch.long)  # images: PPL is text-only
        part = {"rec": -model.decoder.log_prob(batch, z), "kl_dims": model.kl_per_dim(posterior, z, log_q),
                "mean": mean, "logvar": logvar, "n_tokens": getattr(batch, "n_predicted", no_tokens)}
        put(out, indices, {k: v.cpu() for k, v in part.items()}, len(data))
    out["kl"] = out["kl_dims"].sum(-1)
    return out
