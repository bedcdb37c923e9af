"""Posterior parameters of a trained run, computed from its checkpoint with the frozen encoder.

Everything downstream of training (the probe, the latent and per-dimension figures) reads the
eval-mode posterior q(z|x) = N(mean, exp(logvar)): BN on the means uses its running statistics, DU's
variance dropout is off, the variance floor is on (reference-spec §5). Nothing is retrained.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from duvae_cli.errors import UsageError
from duvae_cli.data.batching import batches_for, plan_batches

def dataset_kind(run_dir: Path) -> str:
    """"text" or "image": from the run's binding, else from the dataset file it was trained on, else (the
    file gone: an old run moved) from the dataset's name."""
    import h5py

    from duvae_cli.data import binding

    run_dir = Path(run_dir)
    bound = binding.read(run_dir)
    if bound is not None:
        return str(bound["format"]["kind"])
    try:
        info = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
        with h5py.File(info["data_path"], "r") as f:
            kind = f.attrs["kind"]
        return kind.decode() if isinstance(kind, bytes) else str(kind)
    except (OSError, KeyError, ValueError):
        config = json.loads((run_dir / "config.json").read_text(encoding="utf-8")) \
            if (run_dir / "config.json").exists() else {}
        from duvae_cli.prepare.registry import named_kind

        return named_kind(str(config.get("dataset", "")))


def require_text_run(run_dir: Path, command: str) -> None:
    """One line, exit 2, for a run on an image dataset where a text-only path was taken (the CLI sends
    image runs to their own paths: probe/alphabets.py, viz/images.py)."""
    if dataset_kind(run_dir) == "image":
        raise UsageError(f"{command} {run_dir}: an image run; this path is for text runs")


@torch.no_grad()
def encode_split(model, split, indices: np.ndarray | None, batch_size: int, device, encode) -> list[np.ndarray]:
    """`encode(batch)` -> tensors (B, ...) for the sentences `indices` of `split` (default all), in eval
    mode, as float64 arrays in the order of `indices`. An image split is read as `ImageBatches` reads it
    outside training: its stored binarisation (a grey split: one fixed, seeded binarisation)."""
    model.eval()
    indices = np.arange(len(split)) if indices is None else np.asarray(indices, dtype=np.int64)
    if len(indices) == 0:
        raise ValueError("encoding needs at least one sentence")
    source = batches_for(split)
    parts, order = [], []
    for rows in plan_batches(source.lengths[indices], batch_size):  # length-sorted: little padding
        batch = source.batch(indices[rows]).to(device)
        parts.append([t.double().cpu() for t in encode(batch)])
        order.append(torch.from_numpy(rows))
    inverse = torch.argsort(torch.cat(order))  # back to the order of `indices`
    return [torch.cat(column)[inverse].numpy() for column in zip(*parts)]


def posterior_params(model, split, indices: np.ndarray | None = None, batch_size: int = 128,
                     device: str | torch.device = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Eval-mode (mean, logvar) of the sentences `indices` of `split` (default all), float64 (n, D) each,
    in the order of `indices`; with a flow, of the base Gaussian q(z0|x)."""
    mean, logvar = encode_split(model, split, indices, batch_size, device,
                           lambda batch: model.posterior(batch, kl_weight=1.0))
    return mean, logvar


def probe_features(model, split, indices: np.ndarray | None = None, batch_size: int = 128,
                   device: str | torch.device = "cpu") -> np.ndarray:
    """The probe's features, float64: the eval-mode posterior means (n, D); with a flow [mu0 ; zT]
    (n, 2D), zT = the flow applied to z0 = mu0 (`VAE.features`, paper §4.2)."""
    return encode_split(model, split, indices, batch_size, device, lambda batch: (model.features(batch),))[0]


def mean_codes(model, split, indices: np.ndarray | None = None, batch_size: int = 128,
               device: str | torch.device = "cpu") -> np.ndarray:
    """The z that stands for each example's posterior mean, float64 (n, D): the eval-mode mean, or
    with a flow zT = the flow applied to z0 = mu0 (`VAE.codes`): what reconstructions decode."""
    return encode_split(model, split, indices, batch_size, device, lambda batch: model.codes(batch)[1:])[0]


def per_dimension_stats(mean: np.ndarray, logvar: np.ndarray, threshold: float = 0.01) -> dict:
    """Per dimension, with `duvae evaluate`'s estimators: the analytic KL to N(0, 1) averaged over the
    examples, and the variance (N-1) of the posterior means, active when >= threshold (reference-spec §5)."""
    from duvae_cli.metrics.posterior import active_units, kl_per_dim

    mean_t, logvar_t = torch.as_tensor(mean), torch.as_tensor(logvar)
    active, variance = active_units(mean_t, threshold)
    return {"kl": kl_per_dim(mean_t, logvar_t).numpy(), "mean_variance": variance.numpy(),
            "threshold": threshold, "active": active}
