"""Data-parallel training throughput: 1 process vs `torchrun --nproc-per-node 2`, same global batch.

Every process runs 1 intra-op thread, so 2 processes use 2 cores where 1 process uses one: the
figure is how much of the second core DDP turns into sentences/s, after the per-step collectives
(batch sizes, the global-batch statistics, BatchNorm on the means, DDP's gradient all-reduce). Each
run trains DU-VAE (KL weight 1, the loop's own `train_step` through `parallel.replicate`) on the
length-bucketed global batches the loop makes from the real short-yelp sentences
(`short_yelp.train.10000.txt`); every rank takes its contiguous shard. After `--warmup` untimed
steps, each repeat times `--steps` steps between barriers; sentences/s counts global sentences.
Peak RSS is per process (the largest rank).

    python benchmarks/ddp_throughput.py --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

SIZES = {"synthetic": (50, 50, 2), "short-yelp": (128, 512, 32)}  # embed, hidden, latent
STEPS = {"synthetic": 120, "short-yelp": 30}
DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "short_yelp"


def measure(name: str, steps: int, warmup: int, repeats: int, batch_size: int, data: Path) -> dict | None:
    import numpy as np
    import torch
    import torch.distributed as dist

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from train_throughput import load_sentences

    from duvae_cli.runtime import distributed
    from duvae_cli.train import parallel
    from duvae_cli.data.batching import make_batch, plan_batches, sentence_lengths
    from duvae_cli.config.build import build_text_model
    from duvae_cli.config.resolve import resolve_config
    from duvae_cli.optim import make_optimizer, train_step

    torch.set_num_threads(1)
    here = distributed.join()
    embed, hidden, latent = SIZES[name]
    vocab_size, tokens, offsets = load_sentences(data)
    config = resolve_config("short-yelp", "du", dict(embed_dim=embed, hidden_dim=hidden, latent_dim=latent,
                                                     batch_size=batch_size))
    torch.manual_seed(0)
    model = build_text_model(config, vocab_size).train()
    optimizer = make_optimizer(config, model, config.lr)
    runner = parallel.replicate(model, here, config)
    plan = plan_batches(sentence_lengths(offsets), batch_size, np.random.default_rng(0), here.min_batch())
    batches = [make_batch(tokens, offsets, b) for b in plan]  # global: each rank trains on its shard
    barrier = dist.barrier if here.active else (lambda: None)

    cursor = 0
    for _ in range(warmup):
        train_step(runner, optimizer, batches[cursor % len(batches)], 1.0, config.clip)
        cursor += 1
    rates = []
    for _ in range(repeats):
        barrier()
        n, start = 0, time.perf_counter()
        for _ in range(steps):
            batch = batches[cursor % len(batches)]
            train_step(runner, optimizer, batch, 1.0, config.clip)
            n, cursor = n + len(batch), cursor + 1
        barrier()
        rates.append(n / (time.perf_counter() - start))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peaks = distributed.all_gather_object(peak) if here.active else [peak]
    allreduce_ms = _allreduce_ms(model) if here.active else 0.0
    if not here.is_main:
        return None
    return {"config": name, "processes": here.size, "batch_size": batch_size, "best": max(rates),
            "median": statistics.median(rates), "rates": rates, "peak_rss_mb": max(peaks),
            "threads": torch.get_num_threads(), "allreduce_ms": allreduce_ms,
            "step_ms": 1000 * batch_size / statistics.median(rates)}


def _allreduce_ms(model, repeats: int = 10) -> float:
    """Median time of one all-reduce of a flat buffer as large as all the gradients: what DDP's
    bucketed gradient all-reduce costs per step, at least (it overlaps with the backward pass)."""
    import torch
    import torch.distributed as dist

    buffer = torch.zeros(sum(p.numel() for p in model.parameters() if p.requires_grad))
    times = []
    for _ in range(repeats):
        dist.barrier()
        start = time.perf_counter()
        dist.all_reduce(buffer)
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def launch(processes: int, args, name: str) -> dict:
    """One measurement under torchrun (also for 1 process: same launcher, a world of one)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes),
           __file__, "--one", name, "--steps", str(args.steps or STEPS[name]), "--warmup", str(args.warmup),
           "--repeats", str(args.repeats), "--batch-size", str(args.batch_size), "--data", str(args.data)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--steps", type=int, default=0, help="steps per repeat (default: a few s of work)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32, help="the global batch")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not (args.data / "vocab.txt").exists():
        print(f"skipped: {args.data} not found", file=sys.stderr)
        return
    if args.one:
        result = measure(args.one, args.steps, args.warmup, args.repeats, args.batch_size, args.data)
        if result is not None:
            print(json.dumps(result), flush=True)
        return
    print(f"{'config':<11} {'procs':>5} {'best':>8} {'median':>8} {'speedup (best)':>14} {'peak MB':>8} "
          f"{'step ms':>8} {'grad all-reduce ms':>18}")
    for name in args.configs:
        single = None
        for processes in (1, 2):
            result = launch(processes, args, name)
            single = single or result
            print(f"{name:<11} {processes:>5} {result['best']:>8.0f} {result['median']:>8.0f} "
                  f"{result['best'] / single['best']:>14.2f} {result['peak_rss_mb']:>8.0f} "
                  f"{result['step_ms']:>8.1f} {result['allreduce_ms']:>18.1f}", flush=True)


if __name__ == "__main__":
    main()
