"""Replicate the paper's claims at CPU scale with plain `duvae` commands (docs/replication.md).

    python benchmarks/replicate.py synthetic                  # 5 models x 3 seeds, 20 epochs (~40 min)
    python benchmarks/replicate.py short-yelp --epochs 10     # vae beta fb bn du (~1 h per model)
    python benchmarks/replicate.py omniglot                   # vae bn du at --size small, 4 epochs
    python benchmarks/replicate.py tables                     # the markdown tables of what has run

Every step is a `duvae` command, printed before it runs (copy it to rerun one step by hand). Runs go
to WORK/runs/PART/MODEL-sSEED, prepared data to WORK/data, tables to WORK/tables, figures to
WORK/figures. A step whose output exists is skipped, an interrupted training resumes from its last
checkpoint, so the script can be stopped and restarted at will.

Data: synthetic is generated; short yelp is trained on the real sentences at hand, the short-yelp
10k subset plus Shen et al.'s Yelp dev sentences (labelled by file suffix), minus every sentence
that also occurs in short-yelp valid or test; valid, test, the label-budget subsets and the
official vocabulary are short yelp's own. Omniglot is the 28x28 version built from the 105x105
originals (docs/datasets.md). Each process uses --threads torch threads (OMP_NUM_THREADS).
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PARTS = {
    # part: dataset, models, default epochs, probe options, evaluation options
    "synthetic": dict(dataset="synthetic", models=["vae", "beta", "fb", "bn", "du"], epochs=20,
                      probe=["--labels", "100", "--labels", "1000"], iw_samples=500, examples=None),
    "short-yelp": dict(dataset="short-yelp", models=["vae", "du", "bn", "fb", "beta"], epochs=10,
                       probe=[], iw_samples=500, examples=2000,  # probe: the official budgets
                       options={"bn": ["--gamma", "0.5"]}),  # BN-VAE at DU-VAE's gamma: the MI claim
    "omniglot": dict(dataset="omniglot", models=["vae", "bn", "du"], epochs=4,
                     probe=[], iw_samples=100, examples=1000, train=["--size", "small"]),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=[*PARTS, "tables"])
    parser.add_argument("--work", type=Path, default=Path("replication"), help="workspace (default ./replication)")
    parser.add_argument("--models", help="comma-separated models (default: the part's list)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds 1..S (default 3 synthetic, else 1)")
    parser.add_argument("--epochs", type=int, help="epochs per model (default: the part's budget)")
    parser.add_argument("--warm-up", type=float,
                        help="KL warm-up epochs (default: the preset for synthetic, else half the epochs; "
                             "beta keeps its constant weight)")
    parser.add_argument("--iw-samples", type=int, help="K for IW-NLL")
    parser.add_argument("--examples", type=int, help="evaluate this many test examples (0: all)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per duvae process")
    args = parser.parse_args(argv)
    work = args.work.resolve()
    if args.part == "tables":
        return tables(work)
    part = dict(PARTS[args.part], name=args.part)
    models = args.models.split(",") if args.models else part["models"]
    seeds = range(1, (args.seeds or (3 if args.part == "synthetic" else 1)) + 1)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    runner = Runner(work, env)
    prepare(runner, args.part, work)
    epochs = args.epochs or part["epochs"]
    for model in models:
        for seed in seeds:
            run = work / "runs" / args.part / f"{model}-s{seed}"
            train(runner, part, model, seed, epochs, args.warm_up, run)
            evaluate(runner, part, run, args.iw_samples or part["iw_samples"],
                     part["examples"] if args.examples is None else (args.examples or None))
            runner.step(run / "probe.csv", ["duvae", "classify", str(run), "--quiet", *part["probe"]])
            if args.part == "synthetic":
                figure = work / "figures" / f"synthetic-{model}-s{seed}.png"
                runner.step(figure, ["duvae", "visualize", str(run), "--kind", "latent", "--out", str(figure),
                                     "--quiet"])
    return tables(work)


class Runner:
    """Runs each command once: skipped when its output exists; prints it, its time and its failure."""

    def __init__(self, work: Path, env: dict):
        self.work, self.env = work, env
        (work / "logs").mkdir(parents=True, exist_ok=True)

    def step(self, output: Path, command: list[str]) -> None:
        if output.exists():
            return
        print("$ " + shlex.join(command), flush=True)
        started = time.perf_counter()
        result = subprocess.run(command, env=self.env, cwd=self.work)
        print(f"  ({time.perf_counter() - started:.0f} s)", flush=True)
        if result.returncode != 0:
            sys.exit(f"replicate: command failed with exit code {result.returncode}: {shlex.join(command)}")


def prepare(runner: Runner, part: str, work: Path) -> None:
    data = work / "data"
    if part == "short-yelp":
        source = short_yelp_source(work / "raw" / "short-yelp")
        runner.step(data / "short-yelp" / "dataset.h5",
                    ["duvae", "prepare", "short-yelp", "--source", str(source), "--out", str(data), "--quiet"])
    elif part == "omniglot":
        runner.step(data / "omniglot" / "dataset.h5", ["duvae", "prepare", "omniglot", "--out", str(data), "--quiet"])
    else:
        runner.step(data / "synthetic" / "dataset.h5", ["duvae", "prepare", "synthetic", "--out", str(data),
                                                        "--quiet"])


def short_yelp_source(folder: Path) -> Path:
    """A short-yelp source folder whose train file is the 10k subset plus Shen's dev sentences
    (label = file suffix), without any sentence of short-yelp valid or test."""
    if (folder / "short_yelp.train.txt").exists():
        return folder
    raw, shen = SHARED / "short_yelp", SHARED / "yelp_sentiment"
    if not raw.is_dir() or not shen.is_dir():
        sys.exit(f"replicate: short yelp needs {raw} and {shen}")
    folder.mkdir(parents=True, exist_ok=True)
    held_out = {line.split("\t", 1)[1].strip() for name in ("short_yelp.valid.txt", "short_yelp.test.txt")
                for line in (raw / name).read_text(encoding="utf-8").splitlines() if "\t" in line}
    lines = [line for line in (raw / "short_yelp.train.10000.txt").read_text(encoding="utf-8").splitlines()
             if line.strip()]
    for label in (0, 1):
        lines += [f"{label}\t{s.strip()}" for s in (shen / f"sentiment.dev.{label}").read_text(encoding="utf-8")
                  .splitlines() if s.strip()]
    kept = [line for line in lines if line.split("\t", 1)[1].strip() not in held_out]
    print(f"short yelp train: {len(lines)} sentences (10k subset + Shen dev), {len(lines) - len(kept)} "
          f"dropped as they occur in valid/test, {len(kept)} kept", flush=True)
    tmp = folder / "short_yelp.train.txt.tmp"
    tmp.write_text("\n".join(kept) + "\n", encoding="utf-8")
    for name in ["short_yelp.valid.txt", "short_yelp.test.txt", "vocab.txt",
                 *(f"short_yelp.train.{n}.txt" for n in (100, 500, 1000, 2000, 10000))]:
        if not (folder / name).exists():
            (folder / name).symlink_to(raw / name)
    tmp.rename(folder / "short_yelp.train.txt")
    return folder


def train(runner: Runner, part: dict, model: str, seed: int, epochs: int, warm_up: float | None, run: Path) -> None:
    command = ["duvae", "train", "--dataset", part["dataset"], "--model", model, "--seed", str(seed),
               "--epochs", str(epochs), "--set", f"data_root={runner.work / 'data'}", *part.get("train", []),
               *part.get("options", {}).get(model, []), "--quiet"]
    if warm_up is None and part["name"] != "synthetic":
        warm_up = epochs / 2  # the preset's 10 epochs would never finish annealing in a short budget
    if warm_up is not None and model != "beta":  # beta-VAE: a constant KL weight, no annealing
        command += ["--warm-up", f"{warm_up:g}"]
    done = run / "train.done"
    if done.exists():
        return
    if (run / "checkpoints" / "last.pt").exists():
        command = ["duvae", "train", "--resume", str(run), "--quiet"]
    else:
        command += ["--run-dir", str(run)]
    runner.step(done, command)
    done.write_text("ok\n")


def evaluate(runner: Runner, part: dict, run: Path, iw_samples: int, examples: int | None) -> None:
    command = ["duvae", "evaluate", str(run), "--iw-samples", str(iw_samples), "--quiet"]
    if examples:
        command += ["--examples", str(examples)]
    runner.step(run / "metrics.csv", command)


def tables(work: Path) -> int:
    """One markdown table per part (mean +- std over seeds), written to WORK/tables/PART.md."""
    (work / "tables").mkdir(parents=True, exist_ok=True)
    for part in PARTS:
        runs = sorted(p for p in (work / "runs" / part).glob("*")  # not the `latest` link duvae train makes
                      if not p.is_symlink() and (p / "probe.csv").exists())
        if runs:
            out = work / "tables" / f"{part}.md"
            subprocess.run(["duvae", "report", *map(str, runs), "--metrics", "iw_nll,elbo_nll,kl,mi,au",
                            "--out", str(out), "--quiet"], check=True)
            print(f"{part}: {out}\n{out.read_text()}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
