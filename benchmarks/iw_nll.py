"""Seconds per sentence of IW-NLL (K = 500) on short-yelp sentences: duvae's batched path against a
one-sentence-at-a-time path that does what the reference code does (DU:modules/vae.py nll_iw).

    python benchmarks/iw_nll.py                       # 20 sentences, 3 repeats, both model sizes
    python benchmarks/iw_nll.py --sentences 50 --repeats 5 --configs short-yelp

- batched: `duvae_cli.metrics.score_examples`: the encoder once per sentence, the K samples of several
  sentences scored together (LSTMScorer), noise eps of sentence i from (seed, i).
- one-at-a-time: per sentence, 5 chunks of 100 samples; each chunk re-runs the encoder, repeats the
  sentence 100 times, concatenates z to every input embedding, runs nn.LSTM, projects to the
  vocabulary and takes a cross-entropy over the flattened logits (as the reference does). It uses the
  same eps as the batched path, so the two estimates must agree up to float error.
- GFLOP/s count the model's multiply-adds x 2 for the encoder LSTM (once per sentence), the decoder
  LSTM and the vocabulary projection (per sample and predicted token); the same count for both
  paths. The peak is the best of a loop of 2048^3 fp32 torch.matmul on this machine.

The sentences are read from a prepared dataset (--dataset data/short-yelp/dataset.h5, its test split)
or, by default, straight from ../shared/data/short_yelp (short_yelp.test.txt and vocab.txt); the
benchmark exits cleanly when neither is there. Weights are random (speed does not depend on them).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from duvae_cli.data.batching import TextBatches
from duvae_cli.metrics import EvalOptions, score_examples
from duvae_cli.metrics.iw import example_noise
from duvae_cli.models.gaussian import LOG_2PI
from duvae_cli.data.batching import make_batch
from duvae_cli.config.build import build_text_model
from duvae_cli.config.resolve import TrainConfig

REPO = Path(__file__).resolve().parents[1]
RAW = REPO.parent / "shared" / "data" / "short_yelp"
CONFIGS = {"short-yelp": (128, 512, 32), "yelp": (512, 1024, 32)}  # embed, hidden, latent
VOCAB = 8411


class Split:
    def __init__(self, tokens: np.ndarray, offsets: np.ndarray):
        self.tokens, self.offsets = tokens, offsets


def read_sentences(dataset: Path | None, n: int, seed: int) -> tuple[Split, int] | None:
    """n sentences drawn at random (fixed seed) from the test split, as (tokens, offsets), and V."""
    if dataset is not None:
        from duvae_cli.data.store import load_dataset

        data = load_dataset(dataset)
        split, vocab_size = data.splits["test"], len(data.vocab)
        sentences = [split.tokens[split.offsets[i]:split.offsets[i + 1]] for i in range(len(split))]
    else:
        if not (RAW / "short_yelp.test.txt").exists():
            return None
        vocab = (RAW / "vocab.txt").read_text(encoding="utf-8").split("\n")
        ids = {word: i for i, word in enumerate(w for w in vocab if w)}
        lines = (RAW / "short_yelp.test.txt").read_text(encoding="utf-8").splitlines()
        sentences = [np.array([ids.get(w, 3) for w in line.split("\t", 1)[1].split()], dtype=np.int32)
                     for line in lines]
        vocab_size = len(ids)
    pick = np.sort(np.random.default_rng(seed).choice(len(sentences), n, replace=False))
    chosen = [sentences[i] for i in pick]
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in chosen])]).astype(np.int64)
    return Split(np.concatenate(chosen).astype(np.int32), offsets), vocab_size


@torch.inference_mode()
def one_at_a_time(model, split: Split, k: int, seed: int, chunk: int = 100) -> np.ndarray:
    """The reference's nll_iw with test batches of 1 sentence: -log p(x) per sentence."""
    decoder, out = model.decoder, []
    for i in range(len(split.offsets) - 1):
        batch = make_batch(split.tokens, split.offsets, np.array([i]))
        noise = example_noise(seed, i, k, model.decoder.init_state.in_features)
        log_w = []
        for start in range(0, k, chunk):
            mean, logvar = model.posterior(batch)  # the reference re-encodes for every chunk
            eps = noise[start:start + chunk]  # (ns, D)
            z = mean + eps * (0.5 * logvar).exp()  # (ns, D)
            src = batch.tokens.expand(len(z), -1)  # (ns, T)
            embedded = decoder.embed(src[:, :-1])
            steps = torch.cat([embedded, z.unsqueeze(1).expand(-1, src.shape[1] - 1, -1)], -1)
            c0 = decoder.init_state(z).unsqueeze(0)
            hidden, _ = decoder.lstm(steps, (torch.tanh(c0), c0))
            logits = decoder.project(hidden)  # (ns, T-1, V)
            nll = F.cross_entropy(logits.view(-1, logits.shape[-1]), src[:, 1:].reshape(-1), reduction="none")
            log_px = -nll.view(len(z), -1).sum(-1)
            log_q = -0.5 * (LOG_2PI + logvar + eps.pow(2)).sum(-1)
            log_prior = -0.5 * (LOG_2PI + z.pow(2)).sum(-1)
            log_w.append(log_px + log_prior - log_q)
        out.append(-(torch.logsumexp(torch.cat(log_w).double(), 0) - math.log(k)))
    return np.array([float(v) for v in out])


def model_flops(split: Split, k: int, embed: int, hidden: int, latent: int, vocab: int) -> float:
    """2 x multiply-adds of encoder LSTM (once per sentence), decoder LSTM and projection (per sample)."""
    words = np.diff(split.offsets)
    encoder = (words + 2) * 2 * 4 * hidden * (embed + hidden)  # reads <s> w1..wn </s>
    per_token = 2 * 4 * hidden * (embed + latent + hidden) + 2 * hidden * vocab
    decoder = k * (words + 1) * per_token  # predicts w1..wn </s>
    return float(encoder.sum() + decoder.sum())


def matmul_peak(size: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_config(name: str, split: Split, vocab: int, args) -> None:
    embed, hidden, latent = CONFIGS[name]
    torch.manual_seed(0)
    config = TrainConfig(model="du", embed_dim=embed, hidden_dim=hidden, latent_dim=latent)
    model = build_text_model(config, vocab).eval()
    n, k = len(split.offsets) - 1, args.iw_samples
    options = EvalOptions(iw_samples=k, seed=args.seed, batch_size=args.batch_size)
    batched_times, reference_times = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        batched = score_examples(model, TextBatches(split), options)["iw_nll"]
        batched_times.append((time.perf_counter() - start) / n)
        if not args.skip_reference:
            start = time.perf_counter()
            reference = one_at_a_time(model, split, k, args.seed)
            reference_times.append((time.perf_counter() - start) / n)
    flops = model_flops(split, k, embed, hidden, latent, vocab) / n
    print(f"\n{name}: embed {embed}, hidden {hidden}, latent {latent}, vocab {vocab}; {n} sentences, "
          f"{np.diff(split.offsets).mean():.2f} words on average, K = {k}; {flops / 1e9:.1f} GFLOP/sentence")
    _line("batched (duvae)", batched_times, flops, args.peak)
    if reference_times:
        _line("one at a time", reference_times, flops, args.peak)
        speedup = statistics.median(reference_times) / statistics.median(batched_times)
        diff = np.abs(batched - reference)
        print(f"  speed-up (median / median): {speedup:.2f}x;  |IW-NLL batched - one at a time|: "
              f"max {diff.max():.2e}, mean {diff.mean():.2e} nats (mean IW-NLL {batched.mean():.3f})")


def _line(label: str, times: list[float], flops: float, peak: float) -> None:
    best, median = min(times), statistics.median(times)
    print(f"  {label:<16} best {best:.3f} s/sentence, median {median:.3f};  "
          f"{flops / best / 1e9:.1f} GFLOP/s at best = {100 * flops / best / 1e9 / peak:.0f}% of peak")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--iw-samples", type=int, default=500)
    parser.add_argument("--configs", default="short-yelp,yelp")
    parser.add_argument("--dataset", type=Path, default=None, help="a prepared dataset.h5 (test split)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--seed", type=int, default=783435)
    parser.add_argument("--skip-reference", action="store_true", help="time only the batched path")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    loaded = read_sentences(args.dataset, args.sentences, args.seed)
    if loaded is None:
        print(f"skipped: {RAW} is absent and no --dataset was given")
        return
    split, vocab = loaded
    print(f"torch {torch.__version__}, {args.threads} threads, load average {os.getloadavg()[0]:.2f} "
          f"at start; {_cpu_name()}")
    args.peak = matmul_peak()
    print(f"fp32 matmul peak (2048^3, best of 10): {args.peak:.1f} GFLOP/s")
    for name in args.configs.split(","):
        bench_config(name.strip(), split, vocab, args)
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return sys.platform


if __name__ == "__main__":
    main()
