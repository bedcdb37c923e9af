"""Image model speed: training images/s and IW-NLL seconds per image (K = 500), paper and small sizes.

For each size (`--sizes paper small`), in its own subprocess (clean peak RSS):
- training: DU-VAE (gamma 0.5, p 0.9) at KL weight 1, batch 50, the loop's own `train_step` (forward,
  backward, clip, Adam step, BN-scale rescale) on dynamically binarised Omniglot-like batches (pixel
  probability 0.15 ~ Omniglot's ink), `--steps` timed steps after `--warmup`, best of `--repeats`;
- IW-NLL: `score_examples` (the code `duvae evaluate` runs: one encoder pass, K samples in
  memory-bounded chunks through the PixelCNN) on `--iw-images` images with K = `--iw-samples`.
Speed does not depend on the pixels, so no dataset is needed.

    python benchmarks/image_throughput.py --sizes small paper
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def measure(size: str, steps: int, warmup: int, repeats: int, iw_images: int, iw_samples: int) -> dict:
    import numpy as np
    import torch

    from duvae_cli.data.store import ImageSplit
    from duvae_cli.metrics.evaluate import EvalOptions, score_examples
    from duvae_cli.data.batching import ImageBatches
    from duvae_cli.config.build import build_image_model
    from duvae_cli.config.resolve import resolve_config
    from duvae_cli.optim import make_optimizer, train_step

    config = resolve_config("omniglot", "du", dict(size=size))
    torch.manual_seed(0)
    model = build_image_model(config).train()
    optimizer = make_optimizer(config, model, config.lr)
    grey = np.full((500, 28, 28), 38, dtype=np.uint8)  # 38/255 ~ 0.15 ink probability
    source = ImageBatches(ImageSplit(grey, binarized=False))
    plan = source.plan(config.batch_size, np.random.default_rng(0))
    for step in range(warmup):
        train_step(model, optimizer, source.batch(plan[step % len(plan)], train=True), 1.0, config.clip)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for step in range(steps):
            train_step(model, optimizer, source.batch(plan[step % len(plan)], train=True), 1.0, config.clip)
        rates.append(steps * config.batch_size / (time.perf_counter() - start))
    test = ImageSplit((np.random.default_rng(1).random((iw_images, 28, 28)) < 0.15).astype(np.uint8), True)
    start = time.perf_counter()
    score_examples(model, ImageBatches(test), EvalOptions(iw_samples=iw_samples, batch_size=iw_images))
    iw_seconds = (time.perf_counter() - start) / iw_images
    return {"size": size, "train_images_per_s": max(rates), "rates": rates, "iw_seconds_per_image": iw_seconds,
            "iw_samples": iw_samples, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["small", "paper"], choices=["small", "paper"])
    parser.add_argument("--steps", type=int, default=0, help="timed steps per repeat (default: 10 small, 3 paper)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--iw-images", type=int, default=0, help="images scored (default: 4 small, 1 paper)")
    parser.add_argument("--iw-samples", type=int, default=500)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        steps = args.steps or {"small": 10, "paper": 3}[args.one]
        images = args.iw_images or {"small": 4, "paper": 1}[args.one]
        print(json.dumps(measure(args.one, steps, args.warmup, args.repeats, images, args.iw_samples)))
        return
    print(f"{'size':<6} {'train img/s':>11} {'IW s/image (K=' + str(args.iw_samples) + ')':>20} "
          f"{'peak MB':>8} {'threads':>7}")
    for size in args.sizes:
        cmd = [sys.executable, __file__, "--one", size, "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--repeats", str(args.repeats), "--iw-images", str(args.iw_images),
               "--iw-samples", str(args.iw_samples)]
        result = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
        print(f"{size:<6} {result['train_images_per_s']:>11.1f} {result['iw_seconds_per_image']:>20.2f} "
              f"{result['peak_rss_mb']:>8.0f} {result['threads']:>7}", flush=True)


if __name__ == "__main__":
    main()
