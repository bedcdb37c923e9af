"""duvae's side of the image workloads of `vs_reference.py` (train:omniglot, iw:omniglot): the same
work as ../shared/reference/reference_bench_images.py times on the paper's code.

- train: the paper's Omniglot networks (`--size paper`: ResNet encoder, 13-block PixelCNN, latent
  32), DU-VAE at the Omniglot preset (gamma 0.5, p 0.9), batch 50, KL weight 1, Adam, clip 5: the
  loop's `train_step` (forward, backward, the one clip, the Adam step, DU's BN-scale rescale) on
  random binarised 28x28 images drawn afresh each step (`torch.bernoulli`, as the reference; the
  cost does not depend on the pixels), in the precision `--precision` resolves to (`auto`: what
  `duvae train` picks for DU-VAE on Omniglot here); steps [warmup, warmup + steps) are timed.
- iw: `score_examples` (the code `duvae evaluate` runs, exact fp32) with K samples on `images`
  random binarised images, untrained weights, eval mode, timed after one untimed call on the same
  images; the reference runs `VAE.nll_iw` (image.py's protocol: chunks of 100 samples) likewise.
"""

from __future__ import annotations

import contextlib
import time


def training_precision(dataset: str, values: dict, data_kind: str, requested: str, device: str):
    """(config, Precision, name, why, context) of a duvae training workload: `requested` resolved as
    `duvae train` resolves `--precision` (auto: the methods' measured bf16 parity), plus "tf32" (fp32
    with TF32 matrix products on CUDA, gpu_check.py's third column). On CUDA, auto's fp32 trains
    under TF32 as `duvae train` does and is named "tf32"; "fp32" is strict fp32 everywhere."""
    from duvae_cli.config.build import decide_runtime
    from duvae_cli.config.resolve import resolve_config
    from duvae_cli.runtime.precision import Precision

    asked = "fp32" if requested == "tf32" else requested
    config = resolve_config(dataset, "du", dict(values, device=device, precision=asked))
    runtime = decide_runtime(config, data_kind)
    mode = Precision(runtime.precision, runtime.device)
    name, context = runtime.precision, contextlib.nullcontext()
    if runtime.device.type == "cuda" and name == "fp32" and requested in ("tf32", "auto"):
        name, context = "tf32", mode.training()
    return config, mode, name, runtime.precision_reason, context


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train(steps: int, warmup: int, device: str = "cpu", precision: str = "auto") -> dict:
    """images/s of duvae's training step on the paper's Omniglot networks."""
    import torch

    from duvae_cli.config.build import build_image_model
    from duvae_cli.optim import make_optimizer, train_step

    config, mode, name, why, context = training_precision("omniglot", dict(size="paper"), "image", precision, device)
    torch.manual_seed(0)
    model = build_image_model(config).to(mode.device).train()
    optimizer = make_optimizer(config, model, config.lr)
    probabilities = torch.rand(config.batch_size, 1, 28, 28, device=mode.device)

    def step():
        train_step(model, optimizer, torch.bernoulli(probabilities), 1.0, config.clip, mode)

    with context:
        for _ in range(warmup):
            step()
        _sync(mode.device)
        start = time.perf_counter()
        for _ in range(steps):
            step()
        _sync(mode.device)
        seconds = time.perf_counter() - start
    return dict(images_per_s=config.batch_size * steps / seconds, steps=steps, precision=name,
                precision_why=why, device=str(mode.device),
                threads=torch.get_num_threads())


def iw(images: int, iw_samples: int, device: str = "cpu") -> dict:
    """s/image of duvae's IW-NLL (score_examples, fp32) on random binarised images."""
    import numpy as np
    import torch

    from duvae_cli.config.build import build_image_model
    from duvae_cli.config.resolve import resolve_config
    from duvae_cli.data.batching import ImageBatches
    from duvae_cli.data.store import ImageSplit
    from duvae_cli.metrics.evaluate import EvalOptions, score_examples

    config = resolve_config("omniglot", "du", dict(size="paper"))
    torch.manual_seed(0)
    where = torch.device(device)
    model = build_image_model(config).to(where).eval()
    pixels = (np.random.default_rng(0).random((images, 28, 28)) < 0.5).astype(np.uint8)
    examples = ImageBatches(ImageSplit(pixels, binarized=True))
    options = EvalOptions(iw_samples=iw_samples, batch_size=images)
    score_examples(model, examples, options)  # untimed first call, as the reference's
    _sync(where)
    start = time.perf_counter()
    scores = score_examples(model, examples, options)
    _sync(where)
    seconds = time.perf_counter() - start
    return dict(s_per_image=seconds / images, images=images, iw_samples=iw_samples,
                iw_nll=float(scores["iw_nll"].mean()), precision="fp32", device=device,
                threads=torch.get_num_threads())
