"""Posterior parameters of new data: what `duvae encode` writes and `Model.encode` returns.

Per example, with the frozen eval-mode encoder (BN running statistics, no dropout, the DU variance
floor on; the same pass `duvae classify` reads its features from):
- `mean`, `logvar`: float32 (n, D), the posterior q(z|x) after the regularizer (with an IAF flow,
  of the base Gaussian q(z0|x));
- `zT` (flow runs only): float32 (n, D), the flow applied to z0 = mean, the code a reconstruction
  decodes; the probe's features of a flow run are [mean ; zT].

Examples are encoded in chunks of `chunk` (memory: one chunk's ids and results at a time); within a
chunk, batches are cut by length exactly as `classify` cuts a split of that size, so an encoded split
of at most `chunk` examples equals classify's features bit for bit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from duvae_cli.probe.features import encode_split
from duvae_cli.progress import SILENT, note

CHUNK = 65536  # examples per pass
STREAM_CHUNK = 1024  # examples per pass when the rows go to stdout: `duvae encode ... | head` answers at once


def columns(model) -> tuple[str, ...]:
    """The arrays `encode_chunks` yields for this model."""
    return ("mean", "logvar", "zT") if model.flow is not None else ("mean", "logvar")


def _posterior_columns(model, batch) -> tuple[torch.Tensor, ...]:
    posterior = model.encode(batch, kl_weight=1.0)  # evaluation: KL weight 1, DU floor on
    if model.flow is None:
        return posterior.mean, posterior.logvar
    z_t = model.flow(posterior.mean, posterior.context, torch.zeros_like(posterior.mean))[0]
    return posterior.mean, posterior.logvar, z_t  # as `VAE.codes`: zT = flow(mu0)


def encode_chunks(model, split, batch_size: int, device, chunk: int = CHUNK,
                  reporter=SILENT) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """(indices, {name: float32 (len(indices), D)}) for consecutive chunks of the split, in order."""
    if chunk < 1:
        raise ValueError("chunk must be >= 1")
    model.eval()
    names, n = columns(model), len(split)
    with reporter.task("encoding", n) as task:
        for start in range(0, n, chunk):
            indices = np.arange(start, min(n, start + chunk))
            values = encode_split(model, split, indices, batch_size, device,
                                  lambda batch: _posterior_columns(model, batch))
            yield indices, {name: v.astype(np.float32) for name, v in zip(names, values)}  # exact: f32 -> f64 -> f32
            task.advance(len(indices))


def encode_all(model, split, batch_size: int, device, chunk: int = CHUNK) -> dict[str, np.ndarray]:
    """Every example's arrays at once (the Python API; `duvae encode` streams chunks instead)."""
    parts = [values for _, values in encode_chunks(model, split, batch_size, device, chunk)]
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def encode_file(run_dir: Path, input_path: Path, out: Path | None = None, split: str | None = None,
                checkpoint: str = "best", device: str = "auto", reporter=SILENT, name: str | None = None,
                chunk: int | None = None, data_root: Path | None = None, checks=None) -> dict:
    """`duvae encode`: read INPUT with the run's tokenizer (text: reported and checked per `checks`,
    use/familiar.py), encode it chunk by chunk (default CHUNK, STREAM_CHUNK to stdout), write the rows
    (writers.py: by the extension of `out`, JSON lines on stdout without one); returns a summary."""
    from duvae_cli import __version__
    from duvae_cli.runtime import as_device
    from duvae_cli.runs.load import load_trained
    from duvae_cli.use.familiar import InputChecks
    from duvae_cli.use.inputs import read_input
    from duvae_cli.use.newdata import log_input
    from duvae_cli.use.writers import check_out, open_writer

    check_out(out)  # a bad extension fails before the model is loaded
    resolved = as_device(device)
    trained = load_trained(Path(run_dir), checkpoint, device=resolved, data_root=data_root, needs_data=False)
    for line in trained.data_notes:  # e.g. a moved run's data found elsewhere (data/locate.py)
        note(reporter, line)
    data = read_input(input_path, trained.dataset, split, name)
    familiar = log_input(data, reporter, trained, checks or InputChecks())
    names = columns(trained.model)
    summary = {"run": str(trained.run_dir), "checkpoint": trained.checkpoint_name,
               "checkpoint_sha256": trained.checkpoint_sha256, "input": data.source, "label": data.label,
               "fingerprint": data.fingerprint, "kind": data.kind, "n_examples": len(data),
               "n_tokens": data.n_tokens, "n_unk": data.n_unk, "unk_share": data.unk_share,
               "latent_dim": trained.config.latent_dim, "columns": ",".join(names),
               "duvae_version": __version__}
    labels, chunk = data.split.labels, chunk or (CHUNK if out is not None else STREAM_CHUNK)
    with open_writer(out, len(data), trained.config.latent_dim, names, summary) as writer:
        for indices, values in encode_chunks(trained.model, data.split, trained.config.eval_batch_size,
                                             resolved, chunk, reporter):
            writer.write(indices, values, data.lines, labels)
    return {**summary, "out": None if out is None else str(out), "familiarity": familiar}
