"""Training throughput (sentences/s) and peak memory of `duvae train`'s step, batch 32.

Three model sizes on the real short-yelp sentences (../shared/data/short_yelp, train.10000 +
vocab.txt): synthetic (50/50, latent 2), short-yelp (128/512, latent 32), yelp (512/1024, latent 32).
Each configuration runs in its own subprocess (clean peak RSS); each repeat times `--steps` steps of
the loop's own `train_step` (DU-VAE at KL weight 1: forward, backward, clip, SGD step, BN-scale
rescale)
after `--warmup` untimed steps, over length-bucketed batches exactly as the loop makes them.

    python benchmarks/train_throughput.py --repeats 6
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

SIZES = {"synthetic": (50, 50, 2), "short-yelp": (128, 512, 32), "yelp": (512, 1024, 32)}
DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "short_yelp"


def load_sentences(data: Path):
    import numpy as np

    vocab = [line.strip() for line in (data / "vocab.txt").open(encoding="utf-8")]
    index = {word: i for i, word in enumerate(vocab)}
    ids, offsets = [], [0]
    for line in (data / "short_yelp.train.10000.txt").open(encoding="utf-8"):
        words = line.rstrip("\n").split("\t", 1)[-1].split()
        ids.extend(index.get(w, 3) for w in words)
        offsets.append(len(ids))
    return len(vocab), np.asarray(ids, dtype=np.int32), np.asarray(offsets, dtype=np.int64)


def measure(name: str, steps: int, warmup: int, repeats: int, data: Path) -> dict:
    import numpy as np
    import torch

    from duvae_cli.data.batching import make_batch, plan_batches, sentence_lengths
    from duvae_cli.config.build import build_text_model
    from duvae_cli.config.resolve import resolve_config
    from duvae_cli.optim import train_step

    embed, hidden, latent = SIZES[name]
    vocab_size, tokens, offsets = load_sentences(data)
    config = resolve_config("short-yelp", "du", dict(embed_dim=embed, hidden_dim=hidden, latent_dim=latent))
    torch.manual_seed(0)
    model = build_text_model(config, vocab_size).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr)
    plan = plan_batches(sentence_lengths(offsets), 32, np.random.default_rng(0))
    batches = [make_batch(tokens, offsets, b) for b in plan]

    def step(batch):
        train_step(model, optimizer, batch, 1.0, config.clip)

    cursor = 0
    for _ in range(warmup):
        step(batches[cursor % len(batches)])
        cursor += 1
    rates = []
    for _ in range(repeats):
        n, start = 0, time.perf_counter()
        for _ in range(steps):
            batch = batches[cursor % len(batches)]
            step(batch)
            n, cursor = n + len(batch), cursor + 1
        rates.append(n / (time.perf_counter() - start))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"config": name, "best": max(rates), "median": statistics.median(rates), "rates": rates,
            "peak_rss_mb": peak_mb, "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--steps", type=int, default=0, help="steps per repeat (default: ~6 s of work)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not (args.data / "vocab.txt").exists():
        print(f"skipped: {args.data} not found", file=sys.stderr)
        return
    if args.one:
        default_steps = {"synthetic": 200, "short-yelp": 60, "yelp": 20}[args.one]
        print(json.dumps(measure(args.one, args.steps or default_steps, args.warmup, args.repeats, args.data)))
        return
    print(f"{'config':<11} {'best':>8} {'median':>8} {'peak MB':>8}")
    for name in args.configs:
        cmd = [sys.executable, __file__, "--one", name, "--steps", str(args.steps), "--warmup",
               str(args.warmup), "--repeats", str(args.repeats), "--data", str(args.data)]
        result = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
        print(f"{name:<11} {result['best']:>8.0f} {result['median']:>8.0f} {result['peak_rss_mb']:>8.0f}",
              flush=True)


if __name__ == "__main__":
    main()
