"""Evaluate a model on a whole split: one pass that gives every per-example number, then summaries.

`score_examples(model, examples, options)` runs the encoder once per example (eval mode, KL weight
1: BN running statistics, no dropout, the DU variance floor on) and the K importance samples in
memory-bounded chunks, and returns per-example arrays in dataset order. `summarise` turns them into
the reported metrics (docs/metrics.md). `report.py` adds run directories and output files.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from duvae_cli.data.batching import batches_for, plan_batches
from duvae_cli.errors import UsageError
from duvae_cli.metrics import posterior
from duvae_cli.metrics.iw import BatchNoise, importance_weights, plan_chunks
from duvae_cli.metrics.passes import encoded_batches, put
from duvae_cli.metrics.scoring import make_scorer
from duvae_cli.models.gaussian import draw, kl_standard_normal
from duvae_cli.options import SEED, Option, options_dataclass, parse_size
from duvae_cli.progress import SILENT, skip

MI_ESTIMATORS = ("whole", "batch")
IW_SAMPLES = 500  # K of the paper's IW-NLL (reference-spec §5)

# What `duvae evaluate` can be asked (its flags are derived from these; commands/evaluate.py).
EVAL_OPTIONS = (
    Option("iw_samples", int, IW_SAMPLES, "K, importance samples per example for IW-NLL.", range="[1, 100000]"),
    Option("mi_estimator", str, "whole", "whole (aggregate posterior over the whole split) or batch (He et al.: "
           "per batch of --batch-size).", choices=MI_ESTIMATORS),
    Option("au_threshold", float, 0.01, "A dimension is active if Var(mean) >= this.", range=">= 0"),
    SEED.but(help="Evaluation seed: example i's noise depends on (seed, i) only."),
    Option("batch_size", int, 64, "Examples per encoder batch.", range="[1, 1000000]"),
    Option("memory_budget", str, "1GiB", "Working memory for the samples, e.g. 2GB, 500MB (bytes: "
           "1GB = 10**9, 1GiB = 2**30).", convert=parse_size),
    Option("max_rows", int, None, "(example x sample) rows per chunk (default 2048 on CPU, 2**16 on GPU).",
           range=">= 1", flag=False),
    Option("flush_seconds", float, 10.0, "How often partial results are written while evaluating.",
           range=">= 0", flag=False),
    Option("examples", int, None, "Evaluate a random subset of N examples of the split (seeded by --seed; "
           "each keeps the numbers a whole-split evaluation gives it).", range="[1, 1000000000]"),
)


@options_dataclass(EVAL_OPTIONS)
class EvalOptions:
    """How a split is evaluated (EVAL_OPTIONS): K, the MI estimator, the seed (the noise of example i is a
    function of (seed, i)), the batches and the memory bound of scoring the samples (bytes)."""


def examples_for(split):
    """The batch source of a split as the evaluation reads it (data/batching.py; an image split's
    binarisation is the stored one, or one seeded draw for a grey split)."""
    return batches_for(split)


class ExampleSubset:
    """A fixed subset of a split's examples (`--examples N`). Positions 0..n-1 map to the split's
    indices `index`; the noise of an example is keyed by its index in the split, so every example
    of the subset gets exactly the numbers a whole-split evaluation gives it."""

    def __init__(self, examples, index: np.ndarray):
        self.examples, self.index = examples, np.asarray(index, dtype=np.int64)
        self.lengths = np.asarray(examples.lengths)[self.index]

    @classmethod
    def draw(cls, examples, n: int, seed: int) -> "ExampleSubset":
        """n examples without replacement, from a generator seeded by the evaluation seed, in split order."""
        n = min(n, len(examples))
        return cls(examples, np.sort(np.random.default_rng(seed).choice(len(examples), n, replace=False)))

    def __len__(self) -> int:
        return len(self.index)

    def batch(self, positions: np.ndarray):
        return self.examples.batch(self.index[positions])


def score_examples(model, examples, options: EvalOptions = EvalOptions(), reporter=SILENT,
                   partial=None, subset: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-example results in dataset order: iw_nll, elbo, rec, kl (float64, nats), n_tokens,
    mean, logvar, z_sample (float32 (N, D); z_sample is the one draw per example MI uses), and with a
    flow kl_per_dim (float32 (N, D); mean, logvar and z_sample are then of the base Gaussian).
    With `partial` (store.PartialResults), finished examples are read back and new ones saved.
    With `subset` (example indices; a rank's shard, metrics/sharding.py) only those are scored; the
    other rows stay zero."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            return _score_all(model, examples, options, reporter, partial, subset)
    finally:
        model.train(was_training)


def _score_all(model, examples, options, reporter, partial, subset=None) -> dict[str, np.ndarray]:
    results, done = {}, np.zeros(len(examples), dtype=bool)
    if partial is not None:
        parts, bad = partial.load()
        if bad:
            reporter.log(f"{partial.directory}: {bad} unreadable partial file(s) ignored; recomputing")
        for part in parts:
            put(results, part["index"], _rows(part), len(examples))
            done[part["index"]] = True
        if done.any():
            reporter.log(f"resuming: {int(done.sum())} of {len(examples)} examples already evaluated")
    scorer = make_scorer(model.decoder)
    device = next(model.parameters()).device
    cpu_rows = getattr(scorer, "cpu_rows", None) or 2048  # the PixelCNN prefers smaller CPU chunks
    max_rows = options.max_rows or (2**16 if device.type == "cuda" else cpu_rows)
    pending = np.flatnonzero(~done) if subset is None else np.setdiff1d(subset, np.flatnonzero(done))
    description = f"IW-NLL (K={options.iw_samples})"
    try:
        with reporter.task(description, total=len(pending) + int(done.sum())) as task:
            skip(task, int(done.sum()))  # kept from an interrupted evaluation: not in the rate
            for indices, batch, posterior in encoded_batches(model, examples, options.batch_size, among=pending):
                part = _score_batch(model, scorer, examples, indices, batch, posterior, options, max_rows)
                put(results, part["index"], _rows(part), len(examples))
                done[part["index"]] = True
                if partial is not None:
                    partial.add(part)
                task.advance(len(indices))  # no running mean: examples come in length order, it is no result
    finally:  # also on Ctrl-C: every finished example is kept for the next run
        if partial is not None:
            partial.flush()
    return results


def _score_batch(model, scorer, examples, indices, batch, posterior, options, max_rows) -> dict:
    """The K-sample numbers of one encoded batch (`posterior`: post-regularizer, KL weight 1; with a
    flow, the base Gaussian)."""
    device = posterior.mean.device
    mean, logvar, flow = posterior.mean, posterior.logvar, model.flow  # (B, D) each
    n, k = len(indices), options.iw_samples
    split_index = getattr(examples, "index", None)  # an ExampleSubset keys noise by split index
    noise = BatchNoise(options.seed, indices if split_index is None else split_index[indices], k, mean.shape[1])
    budget = options.memory_budget - n * k * 16  # the (B, K) float64 log-weights and likelihoods
    if budget <= 0:
        raise UsageError(f"--iw-samples {k}: the log-weights of {n} examples x {k} samples alone need "
                         f"{n * k * 16:,} bytes, more than --memory-budget ({options.memory_budget:,}); lower "
                         "--iw-samples or --batch-size, or raise --memory-budget")
    chunks = plan_chunks(n, k, lambda rows, ex: scorer.chunk_bytes(batch, rows, ex) <= budget, max_rows)
    weights = importance_weights(scorer, batch, mean, logvar, noise, chunks, flow, posterior.context)
    rec = -weights.log_likelihood.mean(1)  # mean over the K samples of -log p(x|z_k)
    if flow is None:
        kl = kl_standard_normal(mean.double(), logvar.double()).sum(1).cpu()  # analytic, float64
    else:  # Monte Carlo over the same K samples: rec + kl = -mean_k log w_k >= iw_nll exactly
        kl = weights.kl_per_dim.sum(1)
    z_sample = draw(mean, logvar, noise[0:n, 0:1].squeeze(1).to(device))[0]  # base z0 (MI)
    extra = {} if flow is None else {"kl_per_dim": weights.kl_per_dim.float().numpy()}
    return {
        "index": np.asarray(indices, dtype=np.int64),
        "iw_nll": (-weights.iw_log_likelihood()).numpy(), "rec": rec.numpy(), "kl": kl.numpy(),
        "elbo": (-(rec + kl)).numpy(), "n_tokens": _n_tokens(batch, n),
        "mean": mean.float().cpu().numpy(), "logvar": logvar.float().cpu().numpy(),
        "z_sample": z_sample.float().cpu().numpy(), **extra,
    }


def _n_tokens(batch, n: int) -> np.ndarray:
    """Predicted tokens per example (the PPL denominator); 0 where the data has no tokens."""
    counts = getattr(batch, "n_predicted", None)
    return np.zeros(n, dtype=np.int64) if counts is None else counts.cpu().numpy().astype(np.int64)


def _rows(part: dict) -> dict:
    """A part's per-example arrays, without its "index"."""
    return {name: values for name, values in part.items() if name != "index"}


def summarise(results: dict[str, np.ndarray], options: EvalOptions, lengths: np.ndarray) -> dict:
    """The reported numbers (nats per example unless named otherwise) and per-dimension arrays."""
    mean, logvar, z = (torch.from_numpy(results[k]) for k in ("mean", "logvar", "z_sample"))
    if options.mi_estimator == "whole":
        mi = posterior.mi_whole_set(mean, logvar, z)
    else:
        mi = posterior.mi_per_batch(mean, logvar, z, plan_batches(lengths, options.batch_size))
    au, au_variance = posterior.active_units(mean, options.au_threshold)
    if not torch.isfinite(au_variance).all():  # e.g. one example (N - 1 = 0): no count, not AU 0
        au = float("nan")
    kl_dims = torch.from_numpy(results["kl_per_dim"]).double().mean(0) if "kl_per_dim" in results \
        else posterior.kl_per_dim(mean, logvar)  # a flow's Monte Carlo KL, else analytic
    per_dim = {"au_variance": au_variance, "kl": kl_dims,
               "mpd": posterior.mpd_per_dim(mean, logvar), "ce": posterior.ce_per_dim(logvar)}
    elbo_nll = results["rec"] + results["kl"]
    metrics = {"iw_nll": results["iw_nll"].mean(), "elbo_nll": elbo_nll.mean(),
               "rec": results["rec"].mean(), "kl": results["kl"].mean()}
    tokens = int(results["n_tokens"].sum())
    if tokens > 0:
        metrics["iw_ppl"] = math.exp(results["iw_nll"].sum() / tokens)
        metrics["ppl"] = math.exp(elbo_nll.sum() / tokens)
    metrics.update(mi=mi, au=au, mpd=float(per_dim["mpd"].sum()), ce=float(per_dim["ce"].sum()),
                   n_examples=len(elbo_nll))
    if tokens > 0:  # text only: images have no PPL and no token count
        metrics["n_tokens"] = tokens
    metrics = {k: (v if isinstance(v, int) else float(v)) for k, v in metrics.items()}
    return {"metrics": metrics, "per_dim": {k: v.numpy() for k, v in per_dim.items()}}


def estimators(options: EvalOptions, flow: bool = False) -> dict[str, str]:
    """The estimator written next to each number (docs/metrics.md). With a flow, `kl` is the Monte
    Carlo KL over the K samples and MI, AU, MPD, CE are of the base Gaussian q(z0|x) ("-base")."""
    mi = "whole-set" if options.mi_estimator == "whole" else f"per-batch-{options.batch_size}"
    labels = {"iw_nll": "iw", "iw_ppl": "iw", "elbo_nll": "mc-rec+analytic-kl", "ppl": "elbo",
              "rec": "mc", "kl": "analytic", "mi": mi, "au": f"var>={options.au_threshold:g}",
              "mpd": "whole-set", "ce": "analytic", "n_examples": "count", "n_tokens": "count"}
    if flow:
        labels.update({name: f"{labels[name]}-base" for name in ("mi", "au", "mpd", "ce")},
                      kl="mc", elbo_nll="mc-rec+mc-kl")
    return labels
