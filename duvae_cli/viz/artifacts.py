"""The saved artifacts a figure is drawn from: a run's posteriors on a split, with labels and true z.

Posterior parameters come from `metrics.h5` when `duvae evaluate` stored them for this very
checkpoint (group `<split>/<checkpoint>-<sha256[:12]>` with datasets `mean` and `logvar`, one row per
example in dataset order, and a matching `checkpoint_sha256` attribute); otherwise they are computed
from the checkpoint with the frozen eval-mode encoder. Nothing is ever retrained.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from duvae_cli.probe.features import posterior_params, require_text_run


@dataclass
class Posteriors:
    run_dir: Path
    split: str
    mean: np.ndarray  # (N, D) eval-mode posterior means
    logvar: np.ndarray  # (N, D)
    labels: np.ndarray | None  # (N,)
    true_z: np.ndarray | None  # (N, 2): the synthetic dataset's generating latent
    checkpoint: str
    checkpoint_sha256: str
    source: str  # "metrics.h5" or "checkpoint"
    label_name: str = "label"  # what `labels` are ("alphabet" for Omniglot)


def load_trained_text(run_dir: Path, checkpoint: str, device: str, command: str):
    require_text_run(Path(run_dir), command)
    return load_trained_run(run_dir, checkpoint, device)


def load_trained_run(run_dir: Path, checkpoint: str, device: str):
    """(the run's `Trained`, the torch device), text or image."""
    from duvae_cli.runtime import as_device
    from duvae_cli.runs.load import load_trained

    device = as_device(device)
    return load_trained(Path(run_dir), checkpoint, device=device), device


def load_posteriors(run_dir: Path, split: str = "test", checkpoint: str = "best",
                    device: str = "auto", command: str = "duvae visualize") -> Posteriors:
    from duvae_cli.errors import UsageError

    trained, device = load_trained_run(run_dir, checkpoint, device)
    splits = trained.dataset.splits
    if split not in splits:
        raise UsageError(f"--split {split}: the dataset has {', '.join(splits)}")
    data = splits[split]
    stored = _stored(Path(run_dir) / "metrics.h5", f"{split}/{checkpoint}-{trained.checkpoint_sha256[:12]}",
                     len(data), trained.checkpoint_sha256)
    if stored is not None:
        mean, logvar, source = *stored, "metrics.h5"
    else:
        mean, logvar = posterior_params(trained.model, data, batch_size=trained.config.eval_batch_size,
                                        device=device)
        source = "checkpoint"
    alphabet = getattr(data, "alphabet", None)  # Omniglot: colour by alphabet, not by 1,623 characters
    labels, label_name = (alphabet, "alphabet") if alphabet is not None else (data.labels, "label")
    return Posteriors(Path(run_dir), split, mean, logvar, labels, getattr(data, "z", None),
                      trained.checkpoint_name, trained.checkpoint_sha256, source, label_name)


def _stored(path: Path, name: str, n: int, sha256: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(mean, logvar) from group `name` of metrics.h5 if present, complete and made with this checkpoint."""
    import h5py

    if not path.is_file():
        return None
    try:
        with h5py.File(path, "r") as f:
            group = f.get(name)
            if not isinstance(group, h5py.Group) or "mean" not in group or "logvar" not in group:
                return None
            stamp = group.attrs.get("checkpoint_sha256")
            stamp = stamp.decode() if isinstance(stamp, bytes) else stamp
            mean, logvar = group["mean"][()], group["logvar"][()]
    except (OSError, KeyError):
        return None
    if stamp != sha256 or mean.shape[0] != n or mean.shape != logvar.shape:
        return None
    return mean.astype(np.float64), logvar.astype(np.float64)
