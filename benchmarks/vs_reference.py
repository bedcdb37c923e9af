"""duvae against the paper's own code, side by side: interleaved pairs in one run on one machine.

    python benchmarks/vs_reference.py                    # 3 pairs of every workload (~40 min idle)
    python benchmarks/vs_reference.py --pairs 5 --workloads train:yelp,iw:yelp
    python benchmarks/vs_reference.py --workloads train:short-yelp,train:yelp --precision bf16
    python benchmarks/vs_reference.py --workloads train:omniglot,iw:omniglot --pairs 3

Text workloads (the reference side is ../shared/reference/reference_bench.py, unmodified code of the
paper, run as a subprocess; the duvae side is a subprocess of this file):
- train:SIZE for SIZE in synthetic, short-yelp, yelp: sentences/s of a training step (DU-VAE, batch
  32, the 10,000 short-yelp train sentences, the official 8,411-word vocabulary) over steps
  [warmup, warmup + steps). duvae runs `optim.train_step` over the loop's own length-bucketed
  batches at the KL weights of the loop's schedule, in the precision `--precision auto` resolves to
  here (printed); the reference runs its `text.main` loop.
- iw:SIZE for SIZE in short-yelp, yelp: seconds per sentence of IW-NLL with K = 500 on the first
  100 short-yelp test sentences; duvae's `score_examples` (exact fp32, the default of `duvae
  evaluate`), the reference's `calc_iwnll` (one sentence per batch, chunks of 100 samples).

Image workloads (the reference side is ../shared/reference/reference_bench_images.py; duvae's side
is vs_reference_images.py): the paper's Omniglot networks, DU-VAE (gamma 0.5, p 0.9), untrained.
- train:omniglot: images/s of a training step (batch 50, KL weight 1, Adam, clip 5, random
  binarised images), steps [2, 2 + 6) by default (the reference bench's), duvae in the precision
  `--precision` resolves to (auto: bf16 for image DU-VAE where the CPU has native bf16
  units, since its Omniglot parity run; fp32 elsewhere).
- iw:omniglot: seconds per image of IW-NLL with K = 100 (--iw-samples) on --images 2 random
  binarised images, one untimed call first; duvae's `score_examples` in exact fp32, the reference's
  `nll_iw` (one chunk of 100 samples per image).

Each pair runs A (reference) then B (duvae), each in a fresh process; the ratio of a pair is
B's throughput over A's; the table gives every pair and the median of the pairwise ratios. Run it
with nothing else on the machine. Skips cleanly when ../shared is absent.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from vs_reference_images import training_precision  # a sibling script (benchmarks/ is on sys.path)

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DUVAE_SHARED", REPO.parent / "shared"))  # a GPU machine gets a carried copy
REFERENCE = SHARED / "reference" / "reference_bench.py"
REFERENCE_IMAGES = SHARED / "reference" / "reference_bench_images.py"
DATA = SHARED / "data" / "short_yelp"
SIZES = {"synthetic": (50, 50, 2), "short-yelp": (128, 512, 32), "yelp": (512, 1024, 32)}
TRAIN_STEPS = {"synthetic": 200, "short-yelp": 200, "yelp": 100, "omniglot": 6}
WORKLOADS = ["train:synthetic", "train:short-yelp", "train:yelp", "iw:short-yelp", "iw:yelp",
             "train:omniglot", "iw:omniglot"]
WARMUP = 20
IMAGE_WARMUP = 2  # a paper-size Omniglot step is ~2 s: the reference bench's 2 untimed steps
IW_SAMPLES = {"text": 500, "image": 100}  # K: the paper's for text; one of image.py's chunks for images


def read_split(path: Path, vocab: dict[str, int], limit: int | None = None):
    """Token ids and offsets of a short-yelp file (LABEL<TAB>sentence lines), unknown words -> <unk>."""
    import numpy as np

    ids, offsets = [], [0]
    with path.open(encoding="utf-8") as lines:
        for i, line in enumerate(lines):
            if limit is not None and i >= limit:
                break
            ids.extend(vocab.get(w, 3) for w in line.rstrip("\n").split("\t", 1)[-1].split())
            offsets.append(len(ids))
    return np.asarray(ids, dtype=np.int32), np.asarray(offsets, dtype=np.int64)


def official_vocab() -> dict[str, int]:
    words = (DATA / "vocab.txt").read_text(encoding="utf-8").split("\n")
    return {w: i for i, w in enumerate(w for w in words if w)}


def duvae_train(size: str, steps: int, device: str = "cpu", precision: str = "auto",
                warmup: int = WARMUP) -> dict:
    """sentences/s of duvae's train_step as the loop runs it (batches made beforehand, as the
    reference's are), in `precision` (`training_precision`: auto is what `duvae train` picks here)."""
    import numpy as np
    import torch

    from duvae_cli.data.batching import make_batch, plan_batches, sentence_lengths
    from duvae_cli.config.build import build_text_model
    from duvae_cli.train.schedule import kl_weight_at
    from duvae_cli.optim import train_step

    vocab = official_vocab()
    tokens, offsets = read_split(DATA / "short_yelp.train.10000.txt", vocab)
    embed, hidden, latent = SIZES[size]
    values = dict(embed_dim=embed, hidden_dim=hidden, latent_dim=latent, gamma=0.5, p=0.8)
    config, mode, precision, why, context = training_precision("short-yelp", values, "text", precision, device)
    where = mode.device
    torch.manual_seed(0)
    model = build_text_model(config, len(vocab)).to(where).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr)
    plan = plan_batches(sentence_lengths(offsets), config.batch_size, np.random.default_rng(0))
    batches = [make_batch(tokens, offsets, rows).to(where) for rows in plan[: warmup + steps]]
    weights = [kl_weight_at(config, step, len(plan)) for step in range(len(batches))]
    with context:
        for batch, weight in zip(batches[:warmup], weights):
            train_step(model, optimizer, batch, weight, config.clip, mode)
        _sync(where)
        start = time.perf_counter()
        for batch, weight in zip(batches[warmup:], weights[warmup:]):
            train_step(model, optimizer, batch, weight, config.clip, mode)
        _sync(where)
        seconds = time.perf_counter() - start
    sentences = sum(len(batch) for batch in batches[warmup:])
    return dict(sentences_per_s=sentences / seconds, precision=precision, precision_why=why,
                device=device, threads=torch.get_num_threads())


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def duvae_iw(size: str, sentences: int, iw_samples: int, device: str = "cpu") -> dict:
    """s/sentence of duvae's IW-NLL (score_examples, fp32) on the first `sentences` test lines."""
    import torch

    from duvae_cli.data.batching import TextBatches
    from duvae_cli.metrics import EvalOptions, score_examples
    from duvae_cli.config.build import build_text_model
    from duvae_cli.config.resolve import resolve_config

    vocab = official_vocab()
    split = Split(*read_split(DATA / "short_yelp.test.txt", vocab, sentences))
    embed, hidden, latent = SIZES[size]
    config = resolve_config("short-yelp", "du", dict(embed_dim=embed, hidden_dim=hidden, latent_dim=latent))
    torch.manual_seed(0)
    where = torch.device(device)
    model = build_text_model(config, len(vocab)).to(where).eval()
    options = EvalOptions(iw_samples=iw_samples)
    warm = Split(split.tokens[: split.offsets[3]], split.offsets[:4])
    score_examples(model, TextBatches(warm), options)  # warm-up, untimed (as the reference's 3)
    _sync(where)
    start = time.perf_counter()
    scores = score_examples(model, TextBatches(split), options)
    _sync(where)
    seconds = time.perf_counter() - start
    return dict(s_per_sentence=seconds / sentences, iw_nll=float(scores["iw_nll"].mean()), precision="fp32",
                device=device, threads=torch.get_num_threads())


class Split:
    """A split as TextBatches reads it: flat token ids and offsets."""

    def __init__(self, tokens, offsets):
        self.tokens, self.offsets = tokens, offsets


def kind(workload: str) -> str:
    """"image" for the Omniglot workloads, else "text"."""
    return "image" if workload.endswith(":omniglot") else "text"


def train_steps(args, size: str) -> tuple[int, int]:
    """(timed steps, untimed warm-up steps) of a training workload: --steps/--warmup, else the size's."""
    warmup = IMAGE_WARMUP if size == "omniglot" else WARMUP
    return (TRAIN_STEPS[size] if args.steps is None else args.steps,
            warmup if args.warmup is None else args.warmup)


def iw_samples(args, workload: str) -> int:
    return IW_SAMPLES[kind(workload)] if args.iw_samples is None else args.iw_samples


def run_side(side: str, workload: str, args, device: str = "cpu", precision: str = "auto") -> dict:
    what, size = workload.split(":")
    steps, warmup = train_steps(args, size)
    samples = str(iw_samples(args, workload))
    if side == "reference" and kind(workload) == "image":
        cmd = [sys.executable, str(REFERENCE_IMAGES), what, "--device", device]
        cmd += (["--steps", str(steps), "--warmup", str(warmup)] if what == "train" else
                ["--images", str(args.images), "--iw-samples", samples])
    elif side == "reference":
        cmd = [sys.executable, str(REFERENCE), what, "--size", size, "--device", device]
        cmd += (["--steps", str(steps), "--warmup", str(warmup)] if what == "train" else
                ["--sentences", str(args.sentences), "--iw-samples", samples])
    else:
        cmd = [sys.executable, __file__, "--one", workload, "--sentences", str(args.sentences),
               "--images", str(args.images), "--iw-samples", samples, "--device", device,
               "--precision", precision, "--steps", str(steps), "--warmup", str(warmup)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{side} {workload} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# The throughput of a result, larger is better, and the figure printed: (key, unit, invert).
MEASURES = [("sentences_per_s", "sentences/s", False), ("s_per_sentence", "s/sentence", True),
            ("images_per_s", "images/s", False), ("s_per_image", "s/image", True)]


def measure(result: dict) -> tuple[str, str, float]:
    """(key, unit, throughput) of a side's result: items per second, of training or of IW-NLL."""
    key, unit, invert = next(m for m in MEASURES if m[0] in result)
    return key, unit, 1.0 / result[key] if invert else result[key]


def rate(result: dict) -> float:
    return measure(result)[2]


def one(args) -> dict:
    """duvae's side of one workload, in this process (`--one`)."""
    import vs_reference_images as images

    what, size = args.one.split(":")
    steps, warmup = train_steps(args, size)
    if kind(args.one) == "image":
        if what == "train":
            return images.train(steps, warmup, args.device, args.precision)
        return images.iw(args.images, iw_samples(args, args.one), args.device)
    if what == "train":
        return duvae_train(size, steps, args.device, args.precision, warmup)
    return duvae_iw(size, args.sentences, iw_samples(args, args.one), args.device)


def missing(workloads: list[str]) -> list[Path]:
    """What the workloads need from ../shared and is absent."""
    needed = {REFERENCE_IMAGES} if any(kind(w) == "image" for w in workloads) else set()
    if any(kind(w) == "text" for w in workloads):
        needed |= {REFERENCE, DATA / "vocab.txt"}
    return sorted(path for path in needed if not path.exists())


def compare(args, workloads: list[str]) -> None:
    """Interleaved pairs (reference, then duvae) of every workload; prints each pair, the median
    of the pairwise ratios, and every result as one JSON line."""
    rows = []
    for workload in workloads:
        ratios = []
        for pair in range(args.pairs):
            reference = run_side("reference", workload, args)
            duvae = run_side("duvae", workload, args, precision=args.precision)
            ratios.append(rate(duvae) / rate(reference))
            key, unit, _ = measure(duvae)
            print(f"{workload:<17} pair {pair + 1}: reference {reference[measure(reference)[0]]:.3f}, "
                  f"duvae {duvae[key]:.3f} {unit} ({duvae['precision']}) -> {ratios[-1]:.2f}x", flush=True)
            rows.append(dict(workload=workload, pair=pair + 1, reference=reference, duvae=duvae,
                             ratio=ratios[-1]))
        print(f"{workload:<17} median of {args.pairs} pairwise ratios: {statistics.median(ratios):.2f}x",
              flush=True)
    print(f"# load average {os.getloadavg()[0]:.2f} at the end")
    print("# JSON " + json.dumps(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--sentences", type=int, default=100, help="text IW-NLL: test sentences")
    parser.add_argument("--images", type=int, default=2, help="image IW-NLL: images (>= 2)")
    parser.add_argument("--iw-samples", type=int, help="K (default: 500 for text, 100 for images)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="auto", help="duvae's training precision: auto (what "
                        "`duvae train` picks here: fp32 for DU-VAE since the parity benchmarks), fp32 or bf16")
    parser.add_argument("--steps", type=int, help=argparse.SUPPRESS)  # timed training steps (per size)
    parser.add_argument("--warmup", type=int, help=argparse.SUPPRESS)  # untimed steps first (20; images 2)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args)))
        return
    workloads = args.workloads.split(",")
    unknown = sorted(set(workloads) - set(WORKLOADS))
    if unknown:
        parser.error(f"--workloads: unknown {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}")
    if args.images < 2:
        parser.error("--images must be >= 2 (the reference encoder squeezes a batch of one)")
    absent = missing(workloads)
    if absent:
        print(f"skipped: {', '.join(map(str, absent))} absent")
        return
    import torch

    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {_cpu()}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; load average {os.getloadavg()[0]:.2f} at start", flush=True)
    compare(args, workloads)


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({platform.machine()})"
    except OSError:
        pass
    return platform.platform()


if __name__ == "__main__":
    main()
