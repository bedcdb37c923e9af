"""Where the time of the image workloads goes: the paper-size Omniglot training step and IW-NLL,
per kind of operation, against this CPU's fp32 and bf16 peaks measured in the same process.

    python benchmarks/image_profile.py                   # torch's threads (2 here); ~3 min idle
    python benchmarks/image_profile.py --threads 1 --steps 3

- peaks: a 2048^3 GEMM and a large 3x3 channels-last convolution, fp32 and bf16 (the best of 5);
- train: `train_step` of DU-VAE (gamma 0.5, p 0.9) at KL weight 1, batch 50, Adam, clip 5, on
  random binarised images, `--steps` steps after 3 untimed ones, under torch.profiler (CPU);
- iw: `score_examples` with K = --iw-samples on --images images, the same way.

Each operator's self time is put in a kind (convolution forward / backward, batch norm, ELU,
adds, the weight x mask products, padding and layout copies, allocation, the optimizer, the rest),
and the convolutions' GFLOP/s are computed from the multiply-adds their modules do (counted with
forward hooks; a backward does twice a forward's). Prints a markdown table per workload.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict

KINDS = [  # (kind, operator names), first match wins; the optimizer and clip by the range they run in
    ("convolution forward", ("aten::mkldnn_convolution", "aten::_convolution_pointwise")),
    ("convolution backward", ("aten::convolution_backward",)),
    ("batch norm forward", ("aten::native_batch_norm", "aten::_batch_norm_with_update",
                            "aten::_native_batch_norm_legit_no_training")),
    ("batch norm backward", ("aten::native_batch_norm_backward",)),
    ("ELU forward", ("aten::elu", "aten::elu_")),
    ("ELU backward", ("aten::elu_backward",)),
    ("adds (residual, skip)", ("aten::add", "aten::add_")),
    ("products (weight x mask, ...)", ("aten::mul", "aten::mul_")),
    ("padding and layout copies", ("aten::copy_", "aten::fill_", "aten::clone", "aten::zero_")),
    ("allocation", ("aten::empty", "aten::empty_strided", "aten::empty_like", "aten::resize_")),
]
PHASES = ("optimizer (Adam)", "clip")


def peaks(repeats: int = 5) -> dict[str, float]:
    """GFLOP/s, best of `repeats`: GEMM and convolution, fp32 and bf16."""
    import torch
    import torch.nn.functional as F

    out = {}
    for dtype, name in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
        a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
        out[f"GEMM {name}"] = 2 * 2048**3 / _best(lambda: a @ b, repeats) / 1e9
        x = torch.randn(64, 128, 28, 28, dtype=dtype).contiguous(memory_format=torch.channels_last)
        w = torch.randn(128, 128, 3, 3, dtype=dtype)
        flops = 2 * 64 * 28 * 28 * 128 * 128 * 9
        out[f"conv {name}"] = flops / _best(lambda: F.conv2d(x, w, padding=1), repeats) / 1e9
    return out


def _best(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def conv_flops(model, batch) -> dict[str, float]:
    """Multiply-add FLOPs of the encoder's and the decoder's convolutions in one training-mode
    forward of the VAE `model` on `batch`: {"encoder": ..., "decoder": ...}."""
    import torch

    encoder = set(model.encoder.modules())
    total = {"encoder": 0.0, "decoder": 0.0}

    def count(module, _inputs, output):
        rows = getattr(module, "rows", module.kernel_size[0])  # a cropped masked kernel's rows
        per_output = module.in_channels // module.groups * rows * module.kernel_size[1]
        total["encoder" if module in encoder else "decoder"] += 2.0 * output.numel() * per_output

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        model.train()(batch, 1.0)
    for hook in hooks:
        hook.remove()
    return total


def kind_times(prof) -> dict[str, float]:
    """Seconds of self time per kind; ops inside the optimizer's or the clip's range go there."""
    times = defaultdict(float)
    for event in prof.events():
        phase = _phase(event)
        if event.name in PHASES:
            continue
        kind = phase or next((k for k, names in KINDS if event.name in names), "other")
        times[kind] += event.self_cpu_time_total / 1e6
    return times


def _phase(event) -> str | None:
    parent = event.cpu_parent
    while parent is not None:
        if parent.name in PHASES:
            return parent.name
        parent = parent.cpu_parent
    return None


def profile_train(steps: int) -> tuple[dict, float, float]:
    """(kind -> seconds per step, convolution FLOPs per step, seconds per step)."""
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    from duvae_cli.config.build import build_image_model
    from duvae_cli.config.resolve import resolve_config
    from duvae_cli.optim import clip_gradients, make_optimizer

    config = resolve_config("omniglot", "du", dict(size="paper"))
    torch.manual_seed(0)
    model = build_image_model(config).train()
    optimizer = make_optimizer(config, model, config.lr)
    probabilities = torch.rand(config.batch_size, 1, 28, 28)

    def step():  # optim.train_step, with its optimizer and clip in named ranges
        out = model(torch.bernoulli(probabilities), 1.0)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        with record_function("clip"):
            clip_gradients([p.grad for p in model.parameters() if p.grad is not None], config.clip)
        with record_function("optimizer (Adam)"):
            optimizer.step()
        model.after_step()

    for _ in range(3):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            step()
        seconds = (time.perf_counter() - start) / steps
    flops = 3 * sum(conv_flops(model, torch.bernoulli(probabilities)).values())  # forward + backward (2x)
    return {k: v / steps for k, v in kind_times(prof).items()}, flops, seconds


def profile_iw(images: int, iw_samples: int) -> tuple[dict, float, float]:
    """(kind -> seconds per image, convolution FLOPs per image, seconds per image)."""
    import numpy as np
    import torch
    from torch.profiler import ProfilerActivity, profile

    from duvae_cli.config.build import build_image_model
    from duvae_cli.config.resolve import resolve_config
    from duvae_cli.data.batching import ImageBatches
    from duvae_cli.data.store import ImageSplit
    from duvae_cli.metrics.evaluate import EvalOptions, score_examples

    config = resolve_config("omniglot", "du", dict(size="paper"))
    torch.manual_seed(0)
    model = build_image_model(config).eval()
    pixels = (np.random.default_rng(0).random((images, 28, 28)) < 0.5).astype(np.uint8)
    examples, options = ImageBatches(ImageSplit(pixels, True)), EvalOptions(iw_samples=iw_samples, batch_size=images)
    score_examples(model, examples, options)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        score_examples(model, examples, options)
        seconds = (time.perf_counter() - start) / images
    counted = conv_flops(model, torch.bernoulli(torch.rand(2, 1, 28, 28)))  # two images
    flops = (counted["encoder"] + iw_samples * counted["decoder"]) / 2  # the encoder once, the decoder K times
    return {k: v / images for k, v in kind_times(prof).items()}, flops, seconds


def table(title: str, unit: str, times: dict, flops: float, seconds: float, peak: dict) -> str:
    """A markdown table: kind, seconds per unit, share of the time; the convolutions' GFLOP/s."""
    lines = [f"\n{title}: {seconds:.3f} s per {unit} (profiled; the profiler adds a little)\n",
             f"| kind | s per {unit} | share |", "|---|---:|---:|"]
    total = sum(times.values())
    for kind, value in sorted(times.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {kind} | {value:.3f} | {100 * value / total:.1f}% |")
    conv = sum(v for k, v in times.items() if k.startswith("convolution"))
    rate = flops / conv / 1e9 if conv else float("nan")
    lines.append(f"\nconvolutions: {flops / 1e9:.1f} GFLOP per {unit} in {conv:.3f} s: {rate:.0f} GFLOP/s, "
                 f"{100 * rate / peak['conv fp32']:.0f}% of the fp32 convolution peak, "
                 f"{100 * rate / peak['conv bf16']:.0f}% of the bf16 one")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, help="intra-op threads (default: torch's)")
    parser.add_argument("--steps", type=int, default=5, help="profiled training steps")
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--iw-samples", type=int, default=100)
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; load average {os.getloadavg()[0]:.2f} at start")
    peak = peaks()
    print("\npeaks (GFLOP/s, best of 5): " + ", ".join(f"{k} {v:.0f}" for k, v in peak.items()))
    print(table("training step (paper size, batch 50, fp32)", "step", *profile_train(args.steps), peak))
    print(table(f"IW-NLL (K = {args.iw_samples}, fp32)", "image", *profile_iw(args.images, args.iw_samples), peak))
    print(f"\n# load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
