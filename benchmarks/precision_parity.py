"""Parity of bf16 training with fp32: the same configurations trained in both, evaluated in fp32.

    python benchmarks/precision_parity.py synthetic            # vae bn du x 3 seeds x {fp32, bf16}
    python benchmarks/precision_parity.py short-yelp           # bn du x 2 seeds, paper size, 3 epochs
    python benchmarks/precision_parity.py omniglot             # du bn vae x 3 seeds, --size small, 8 epochs
    python benchmarks/precision_parity.py table                # the parity tables of what has run

Every step is a `duvae` command, printed before it runs; a step whose output exists is skipped and an
interrupted training resumes, so the script can be stopped and restarted. Work goes to
WORK/runs/PART/MODEL-sSEED-PRECISION (default WORK = ./parity, git-ignored).

- synthetic: the full preset (20 epochs, 16,000 sentences), vae, bn and du, seeds 1-3.
- short-yelp: the 67,642-sentence training set of docs/replication.md (benchmarks/replicate.py
  builds it), paper size (128/512/32), --epochs (default 3) with the KL warm-up over half of them,
  bn and du, seeds 1-2.
- omniglot: the prepared Omniglot split (`duvae prepare omniglot`), `--size small`, --epochs
  (default 8) with the KL warm-up over 2 and the plateau rule of the image replication
  (benchmarks/replicate.py: patience 2 from epoch 3), du, bn and vae, seeds 1-3.
- Evaluation, the same for every run and always fp32: IW-NLL with K = --iw-samples on the test split
  (short-yelp: a seeded subset of --examples; omniglot: of 300 images), KL, MI, AU; linear probe
  accuracy at 100 labels (text: acc@100) or with 15 drawings per character, one probe per alphabet
  (Omniglot's protocol: acc@15).

The table gives, per model and metric, the fp32 and bf16 means over seeds, their difference, and the
seed-to-seed standard deviation (pooled over the two precisions); bf16 is "within seed noise" when
|mean difference| <= 2 x that standard deviation x sqrt(2 / seeds) (twice the standard error of a
difference of two means) or below the metric's resolution (0.01 nats, half an active unit or an
accuracy point), the rule docs/training.md quotes for `--precision auto`. The last column pairs the
runs by seed (same initialisation and batch order) and gives the mean paired difference in units of
its standard error, a more sensitive view reported beside the rule.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import math
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PARTS = {
    "synthetic": dict(dataset="synthetic", models=["vae", "bn", "du"], seeds=3, epochs=None, train=[],
                      iw_samples=500, examples=None),
    "short-yelp": dict(dataset="short-yelp", models=["bn", "du"], seeds=2, epochs=3, train=[],
                       iw_samples=500, examples=1000),
    "omniglot": dict(dataset="omniglot", models=["du", "bn", "vae"], seeds=3, epochs=8, warm_up=2,
                     train=["--size", "small", "--set", "patience=2", "--set", "decay_from_epoch=3"],
                     iw_samples=500, examples=300),
}
# The probe's number per kind of data: (metric name, probe.csv `labels`, the command's flags).
PROBES = {"text": ("acc@100", "100", ["--labels", "100"]), "omniglot": ("acc@15", "15", ["--per-class", "15"])}
PRECISIONS = ("fp32", "bf16")
METRICS = ("iw_nll", "kl", "mi", "au", "acc@100", "acc@15")
# Differences below these count as equal whatever the spread (the precision the numbers are read at;
# a collapsed posterior's MI is -0.002 in every seed, with a spread of 1e-5).
RESOLUTION = {"iw_nll": 0.01, "kl": 0.01, "mi": 0.01, "au": 0.5, "acc@100": 0.5, "acc@15": 0.5}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=[*PARTS, "table"])
    parser.add_argument("--work", type=Path, default=Path("parity"))
    parser.add_argument("--models", help="comma-separated (default: the part's)")
    parser.add_argument("--seeds", type=int, help="seeds 1..S (default: the part's)")
    parser.add_argument("--epochs", type=int, help="epochs (default: synthetic's preset; short-yelp 3, omniglot 8)")
    parser.add_argument("--iw-samples", type=int)
    parser.add_argument("--examples", type=int, help="evaluate a seeded subset of the test split (0: all)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    work = args.work.resolve()
    if args.part == "table":
        print(table(work))
        return 0
    part = dict(PARTS[args.part])
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    data = work / "data"
    source = prepare_source(args.part, work)
    step(work, env, data / part["dataset"] / "dataset.h5",
         ["duvae", "prepare", args.part, *(["--source", str(source)] if source else []), "--out", str(data), "-q"])
    epochs = args.epochs or part["epochs"]
    models = args.models.split(",") if args.models else part["models"]
    for seed in range(1, (args.seeds or part["seeds"]) + 1):  # seeds outermost: every model gets a pair early
        for model in models:
            for precision in PRECISIONS:
                run = work / "runs" / args.part / f"{model}-s{seed}-{precision}"
                train(work, env, part, model, seed, precision, epochs, data, run)
                examples = part["examples"] if args.examples is None else args.examples
                step(work, env, run / "metrics.csv",
                     ["duvae", "evaluate", str(run), "--iw-samples", str(args.iw_samples or part["iw_samples"]),
                      *(["--examples", str(examples)] if examples else []), "-q"])
                step(work, env, run / "probe.csv", ["duvae", "classify", str(run), *probe(args.part)[2], "-q"])
    print(table(work))
    return 0


def probe(part: str) -> tuple[str, str, list[str]]:
    """(metric, probe.csv labels, classify flags) of a part's probe."""
    return PROBES["omniglot" if PARTS[part]["dataset"] == "omniglot" else "text"]


def prepare_source(part: str, work: Path) -> Path | None:
    """short-yelp: the replication's training set, built by benchmarks/replicate.py."""
    if part != "short-yelp":
        return None
    spec = importlib.util.spec_from_file_location("replicate", HERE / "replicate.py")
    replicate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(replicate)
    return replicate.short_yelp_source(work / "raw" / "short-yelp")


def step(work: Path, env: dict, output: Path, command: list[str]) -> None:
    """Run `command` once: skipped when `output` exists."""
    if output.exists():
        return
    work.mkdir(parents=True, exist_ok=True)
    print("$ " + shlex.join(command), flush=True)
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=work)
    print(f"  ({time.perf_counter() - started:.0f} s)", flush=True)
    if done.returncode != 0:
        sys.exit(f"precision_parity: exit code {done.returncode}: {shlex.join(command)}")


def train(work: Path, env: dict, part: dict, model: str, seed: int, precision: str, epochs: int | None,
          data: Path, run: Path) -> None:
    done = run / "train.done"
    if done.exists():
        return
    if (run / "checkpoints" / "last.safetensors").exists():
        command = ["duvae", "train", "--resume", str(run), "-q"]
    else:
        command = ["duvae", "train", "--dataset", part["dataset"], "--model", model, "--seed", str(seed),
                   "--precision", precision, "--set", f"data_root={data}", "--run-dir", str(run), "-q",
                   *part["train"]]
        if epochs:
            warm_up = min(part.get("warm_up", epochs / 2), epochs / 2)
            command += ["--epochs", str(epochs), "--warm-up", f"{warm_up:g}"]
    step(work, env, done, command)
    done.write_text("ok\n")


def read_numbers(run: Path, part: str) -> dict[str, float]:
    """The run's fp32 evaluation (metrics.csv) and its probe accuracy (probe.csv): at 100 labels
    (text), with 15 drawings per character (Omniglot)."""
    name, labels, _ = probe(part)
    numbers = {}
    with (run / "metrics.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["metric"] in METRICS:
                numbers[row["metric"]] = float(row["value"])
    with (run / "probe.csv").open(encoding="utf-8") as f:
        accuracies = [float(row["value"]) for row in csv.DictReader(f)
                      if row["metric"] == "accuracy" and row["labels"] == labels and row["split"] == "test"]
    if accuracies:
        numbers[name] = 100 * statistics.mean(accuracies)  # over the probe's repeats
    return numbers


def table(work: Path) -> str:
    lines = []
    for part in PARTS:
        runs = sorted((work / "runs" / part).glob("*-s*-*")) if (work / "runs" / part).is_dir() else []
        results: dict[tuple[str, str], dict[str, dict]] = {}
        for run in runs:
            if (run / "probe.csv").exists() and (run / "metrics.csv").exists():
                model, seed, precision = run.name.rsplit("-", 2)
                results.setdefault((model, precision), {})[seed] = read_numbers(run, part)
        models = sorted({m for m, _ in results})
        if not models:
            continue
        lines += [f"\n{part}\n", "| model | metric | fp32 | bf16 | bf16 - fp32 | seed sd | within noise | "
                  "paired by seed (bf16 - fp32) |", "|---|---|---|---|---|---|---|---|"]
        for model in models:
            fp32, bf16 = results.get((model, "fp32"), {}), results.get((model, "bf16"), {})
            for metric in METRICS:
                a = {seed: r[metric] for seed, r in fp32.items() if metric in r}
                b = {seed: r[metric] for seed, r in bf16.items() if metric in r}
                if not a or not b:
                    continue
                lines.append(_row(model, metric, a, b))
    return "\n".join(lines)


def _row(model: str, metric: str, a: dict[str, float], b: dict[str, float]) -> str:
    """a, b: seed -> value in fp32 and bf16."""
    diff = statistics.mean(b.values()) - statistics.mean(a.values())
    spreads = [statistics.variance(x.values()) for x in (a, b) if len(x) > 1]
    sd = math.sqrt(statistics.mean(spreads)) if spreads else float("nan")
    n = min(len(a), len(b))
    bound = max(2 * sd * math.sqrt(2 / n), RESOLUTION[metric]) if not math.isnan(sd) else float("nan")
    verdict = "-" if math.isnan(bound) else ("yes" if abs(diff) <= bound else "NO")
    paired = [b[seed] - a[seed] for seed in sorted(set(a) & set(b))]
    if len(paired) > 1 and statistics.stdev(paired) > 0:
        se = statistics.stdev(paired) / math.sqrt(len(paired))
        paired_text = f"{', '.join(f'{d:+.3f}' for d in paired)} ({statistics.mean(paired) / se:+.1f} SE)"
    else:
        paired_text = ", ".join(f"{d:+.3f}" for d in paired)
    return f"| {model} | {metric} | {_ms(a)} | {_ms(b)} | {diff:+.3f} | {sd:.3f} | {verdict} | {paired_text} |"


def _ms(by_seed: dict[str, float]) -> str:
    values = list(by_seed.values())
    sd = statistics.stdev(values) if len(values) > 1 else float("nan")
    return f"{statistics.mean(values):.3f} ± {sd:.3f} (n={len(values)})"


if __name__ == "__main__":
    raise SystemExit(main())
