"""Sharded evaluation under torchrun: each rank scores a share of the examples, all get the whole.

Rank r scores examples r, r + N, r + 2N, ... (strided, so every rank gets short and long sentences
alike and the length-sorted batches stay balanced). The noise of example i is a function of
(evaluation seed, i) alone (metrics/iw.py), so each example's IW-NLL, ELBO, posterior parameters and
MI sample are the numbers one process computes, to float rounding from different batch padding.
The per-example rows are then gathered on every rank in dataset order; MI, AU, MPD and CE need
every example's posterior, and `summarise` computes them from the gathered arrays exactly as in one
process. Rank 0 writes the files (metrics/report.py).
"""

from __future__ import annotations

import numpy as np

from duvae_cli.metrics.evaluate import EvalOptions, score_examples
from duvae_cli.progress import SILENT
from duvae_cli.runtime import distributed


def shard_of(n_examples: int, here: distributed.World) -> np.ndarray:
    """The example indices rank `here.rank` scores."""
    return np.arange(here.rank, n_examples, here.size)


def score_sharded(model, examples, options: EvalOptions, reporter=SILENT,
                  here: distributed.World | None = None) -> dict[str, np.ndarray]:
    """`score_examples` over this rank's shard, then every rank's rows assembled in dataset order
    (collective: every rank must call it)."""
    here = here or distributed.world()
    mine = shard_of(len(examples), here)
    results = score_examples(model, examples, options, reporter, subset=mine)
    part = (mine, {name: values[mine] for name, values in results.items()})
    return assemble(distributed.all_gather_object(part), len(examples))


def assemble(parts: list[tuple[np.ndarray, dict]], total: int) -> dict[str, np.ndarray]:
    """(indices, {name: rows}) parts -> {name: (total, ...) array} with every part's rows in place."""
    out: dict[str, np.ndarray] = {}
    for indices, rows in parts:
        for name, values in rows.items():
            if name not in out:
                out[name] = np.zeros((total, *values.shape[1:]), dtype=values.dtype)
            out[name][indices] = values
    return out
