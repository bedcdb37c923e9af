"""Replicate the paper's claims at CPU scale with plain `duvae` commands (docs/replication.md).

    nohup python benchmarks/replicate.py all --jobs 2 > replication/run.log 2>&1 &   # the plan
    python benchmarks/replicate.py verdicts       # runs.csv (committed), tables per claim, curves, time
    python benchmarks/replicate.py short-yelp     # one part: du bn vae fb x 3 seeds, 6 epochs, fp32
    python benchmarks/replicate.py omniglot       # du bn vae x 3 seeds at --size small, 8 epochs, fp32
    python benchmarks/replicate.py synthetic      # vae beta fb bn du x 3 seeds, 20 epochs
    python benchmarks/replicate.py all --dry-run  # print every command, run nothing

Every step is a `duvae` command, printed before it runs (copy it to rerun one step by hand); its
output goes to WORK/logs/PART-MODEL-sSEED.log and its duration to WORK/steps.csv. Runs go to
WORK/runs/PART/MODEL-sSEED, prepared data to WORK/data, verdicts and figures to WORK/verdicts, and
the per-run outputs of the comparison to docs/replication/COMPARISON/runs.csv (with verdicts.md
beside it), which is committed: WORK is not, and the tables are computed from runs.csv alone. A
finished step leaves WORK/runs/.../replicate/STEP.done and is skipped; an interrupted training
resumes from its last checkpoint (`duvae train --resume`), an interrupted evaluation from its
saved examples, so the script can be stopped (kill -INT or -TERM: the trainings save a checkpoint)
and started again at will. Runs already finished keep their settings: changing --epochs later
does not retrain them.

Per run: train; `duvae evaluate` with K = --iw-samples on a seeded subset of --examples test
examples (IW-NLL); `duvae evaluate --iw-samples 1` on the whole test split (ELBO, KL, MI, AU);
`duvae classify` at every official label budget on the whole test split.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from duvae_cli.io import atomic_write_text

sys.path.insert(0, str(Path(__file__).resolve().parent))
import verdicts as V  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
RECORD = REPO / "docs" / "replication"  # RECORD/<comparison>/runs.csv: committed per-run outputs
PLATEAU_TEXT = ["--set", "patience=1", "--set", "decay_from_epoch=3"]  # a halving can happen in the cap
FP32 = ["--precision", "fp32"]  # the paper code's arithmetic for every model (docs/replication.md)
PARTS = {
    # part: dataset, models (priority order), epoch cap, KL warm-up, train/probe/eval options
    "short-yelp": dict(dataset="short-yelp", models=["du", "bn", "vae", "fb"], epochs=6, warm_up=2,
                       train=PLATEAU_TEXT + FP32, options={"bn": ["--gamma", "0.5"]},  # BN at DU's gamma
                       probe=[], iw_samples=500, examples=500, checkpoint_every=1000),
    "omniglot": dict(dataset="omniglot", models=["du", "bn", "vae"], epochs=8, warm_up=2,
                     train=["--size", "small", "--set", "patience=2", "--set", "decay_from_epoch=3", *FP32],
                     probe=[], iw_samples=500, examples=300, checkpoint_every=200),
    "synthetic": dict(dataset="synthetic", models=["vae", "beta", "fb", "bn", "du"], epochs=20, warm_up=None,
                      train=[], probe=["--labels", "100", "--labels", "1000"], iw_samples=500, examples=None,
                      checkpoint_every=0),
    # "Beyond the paper" (issue #31; docs/replication.md): every method at its full preset (epochs
    # None: the dataset preset's, 50 on synthetic), the hypotheses B1-B4 in verdicts.py.
    "beyond-synthetic": dict(dataset="synthetic", models=["du", "vae", "lidvae", "cyc", "bn", "beta", "fb", "delta",
                                                          "mae", "il-lidvae", "iaf-fb", "iaf-bn", "du-iaf", "agg", "sa"],
                             epochs=None, warm_up=None, train=FP32, probe=["--labels", "100", "--labels", "1000"],
                             iw_samples=500, examples=None, checkpoint_every=0),
    "beyond-omniglot": dict(dataset="omniglot", models=["vae", "cr-vae", "lidvae", "il-lidvae"], epochs=8, warm_up=2,
                            train=["--size", "small", "--set", "patience=2", "--set", "decay_from_epoch=3", *FP32],
                            probe=[], iw_samples=500, examples=300, checkpoint_every=200),
}
# Labels of runs that are not a bare --model: a strategy or a schedule on a model.
LABELS = {"agg": ["--model", "vae", "--strategy", "aggressive"], "sa": ["--model", "vae", "--strategy", "savi"],
          "cyc": ["--model", "vae", "--anneal", "cyclical"]}
# `all`: the runs that decide the closest claims first (DU and BN), fb (no hypothesis) last.
ALL = [("short-yelp", ["du", "bn", "vae"]), ("omniglot", ["du", "bn", "vae"]), ("short-yelp", ["fb"])]
FIGURE_MODELS = {"short-yelp": ["vae", "bn", "du", "fb"], "omniglot": ["vae", "bn", "du"],
                 "synthetic": ["vae", "beta", "fb", "bn", "du"],
                 "beyond-synthetic": PARTS["beyond-synthetic"]["models"], "beyond-omniglot": PARTS["beyond-omniglot"]["models"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=[*PARTS, "all", "verdicts", "tables"])
    parser.add_argument("--work", type=Path, default=Path("replication"), help="workspace (default ./replication)")
    parser.add_argument("--models", help="comma-separated models (default: the part's list)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 1..S (default 3)")
    parser.add_argument("--epochs", type=int, help="epoch cap of every model (default: the part's)")
    parser.add_argument("--warm-up", type=float, help="KL warm-up epochs (default: the part's; beta: none)")
    parser.add_argument("--iw-samples", type=int, help="K for IW-NLL (default 500)")
    parser.add_argument("--examples", type=int, help="IW-NLL on this many test examples (0: all)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="extra `duvae train --set` for new runs (repeatable)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per duvae process")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained side by side (2 on a 2-core machine)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands of unfinished steps only")
    parser.add_argument("--comparison",
                        help="name of this comparison: its per-run outputs are RECORD/NAME/runs.csv (default: "
                             "cpu-scale, the plan of docs/replication.md, for the workspace ./replication; "
                             "else the workspace folder's name, so a trial workspace never overwrites it)")
    parser.add_argument("--record", type=Path, default=RECORD,
                        help="the committed folder of per-run outputs (default docs/replication)")
    args = parser.parse_args(argv)
    work = args.work.resolve()
    if args.part in ("verdicts", "tables"):
        return verdicts(work, args)
    work.mkdir(parents=True, exist_ok=True)
    lock = open(work / ".replicate.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        sys.exit(f"replicate: another replicate.py is running in {work}")
    (work / "replicate.pid").write_text(f"{os.getpid()}\n")  # kill -INT $(cat WORK/replicate.pid) stops it
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    runner = Runner(work, env, args.dry_run)
    signal.signal(signal.SIGTERM, runner.stop), signal.signal(signal.SIGINT, runner.stop)
    queue = plan(args)
    for part in dict.fromkeys(p for p, _, _ in queue):
        prepare(runner, part, work)
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        failures = [f for f in pool.map(lambda job: pipeline(runner, args, *job), queue) if f]
    if runner.stopping.is_set():
        print("replicate: stopped; run the same command again to continue", flush=True)
        return 130
    for failure in failures:
        print(f"replicate: FAILED {failure}", flush=True)
    if not args.dry_run:
        verdicts(work, args)
    return 1 if failures else 0


def plan(args) -> list[tuple[str, str, int]]:
    """(part, model, seed) in the order they start: seed-major within each group of models.
    --models replaces a part's list, or filters `all`'s."""
    groups = ALL if args.part == "all" else [(args.part, PARTS[args.part]["models"])]
    if args.models:
        chosen = args.models.split(",")
        groups = [(p, [m for m in models if m in chosen]) for p, models in groups] if args.part == "all" \
            else [(args.part, chosen)]
    return [(part, model, seed) for part, models in groups for seed in range(1, args.seeds + 1)
            for model in models]


class Runner:
    """Runs each command once per marker; logs it, times it, stops children on SIGINT/SIGTERM."""

    def __init__(self, work: Path, env: dict, dry_run: bool = False):
        self.work, self.env, self.dry_run = work, env, dry_run
        self.stopping, self.lock, self.children = threading.Event(), threading.Lock(), set()
        (work / "logs").mkdir(parents=True, exist_ok=True)

    def stop(self, signum, frame) -> None:
        print(f"replicate: signal {signum}: stopping the running commands (trainings save a checkpoint)",
              flush=True)
        self.stopping.set()
        for child in list(self.children):
            child.send_signal(signal.SIGINT)

    def step(self, marker: Path, command: list[str], tag: str, log: Path | None = None) -> bool:
        """Run `command` unless `marker` exists; True when the step is done. A `.done` marker is
        written on success; any other marker is the command's own output."""
        if marker.exists():
            return True
        if self.stopping.is_set():
            return False
        print(f"[{tag}] $ {shlex.join(command)}", flush=True)
        if self.dry_run:
            return True
        started, stamp = time.perf_counter(), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with open(log or self.work / "logs" / "prepare.log", "a") as out:
            out.write(f"\n{stamp} $ {shlex.join(command)}\n")
            out.flush()
            # a session of its own: a Ctrl-C or kill -INT of the whole group reaches it once, from stop()
            child = subprocess.Popen(command, env=self.env, cwd=self.work, stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
            self.children.add(child)
            if self.stopping.is_set():  # a signal between the check above and the add
                child.send_signal(signal.SIGINT)
            code = child.wait()
            self.children.discard(child)
        seconds = time.perf_counter() - started
        print(f"[{tag}]   exit {code} after {seconds:.0f} s", flush=True)
        with self.lock:
            new = not (self.work / "steps.csv").exists()
            with open(self.work / "steps.csv", "a") as csv:
                csv.write("started_utc,part,tag,step,seconds,exit\n" if new else "")
                csv.write(f"{stamp},{tag.split('/')[0]},{tag},{marker.stem},{seconds:.1f},{code}\n")
        if code != 0:
            if not self.stopping.is_set():
                print(f"[{tag}] failed (exit {code}); see {log}", flush=True)
            return False
        if marker.suffix == ".done":
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text("ok\n")
        return True


def pipeline(runner: Runner, args, part_name: str, model: str, seed: int) -> str | None:
    """Train, evaluate (IW subset, whole test) and probe one run; the failure's name, or None."""
    part = PARTS[part_name]
    run = runner.work / "runs" / part_name / f"{model}-s{seed}"
    tag, log, marks = f"{part_name}/{model}-s{seed}", runner.work / "logs" / f"{part_name}-{model}-s{seed}.log", \
        run / "replicate"
    if (marks / "done").exists():
        return None
    iw = args.iw_samples or part["iw_samples"]
    examples = part["examples"] if args.examples is None else (args.examples or None)
    steps = [(marks / "train.done", train_command(runner, args, part_name, model, seed, run)),
             (marks / "evaluate-iw.done", ["duvae", "evaluate", str(run), "--iw-samples", str(iw), "--quiet",
                                           *(["--examples", str(examples)] if examples else [])]),
             (marks / "evaluate-test.done", ["duvae", "evaluate", str(run), "--iw-samples", "1", "--quiet"]),
             (marks / "classify.done", ["duvae", "classify", str(run), "--quiet", *part["probe"]])]
    if PARTS[part_name]["dataset"] == "synthetic":
        figure = runner.work / "verdicts" / f"synthetic-{model}-s{seed}.png"
        steps.append((marks / "latent.done", ["duvae", "visualize", str(run), "--kind", "latent", "--out",
                                              str(figure), "--quiet"]))
    for marker, command in steps:
        if not runner.step(marker, command, tag, log):
            return None if runner.stopping.is_set() else f"{tag} at {marker.stem} (log: {log})"
    if not runner.dry_run:
        (marks / "done").write_text("ok\n")
    return None


def train_command(runner: Runner, args, part_name: str, model: str, seed: int, run: Path) -> list[str]:
    if (run / "checkpoints" / "last.safetensors").exists():
        return ["duvae", "train", "--resume", str(run), "--quiet"]
    part = PARTS[part_name]
    warm_up = args.warm_up if args.warm_up is not None else part["warm_up"]
    epochs = args.epochs or part["epochs"]  # None: the dataset preset's
    command = ["duvae", "train", "--dataset", part["dataset"], *LABELS.get(model, ["--model", model]),
               "--seed", str(seed), *(["--epochs", str(epochs)] if epochs else []),
               "--set", f"data_root={runner.work / 'data'}",
               "--checkpoint-every", str(part["checkpoint_every"]), *part["train"],
               *part.get("options", {}).get(model, [])]
    if warm_up is not None and model not in ("beta", "cyc"):  # beta: a constant weight; cyc: its own cycles
        command += ["--warm-up", f"{warm_up:g}"]
    for setting in args.set:
        command += ["--set", setting]
    return command + ["--run-dir", str(run), "--quiet"]


def prepare(runner: Runner, part: str, work: Path) -> None:
    data, name = work / "data", PARTS[part]["dataset"]
    source = ["--source", str(short_yelp_source(work / "raw" / "short-yelp"))] if part == "short-yelp" else []
    marker = data / name / "dataset.h5"
    runner.step(marker, ["duvae", "prepare", name, *source, "--out", str(data), "--quiet"], f"{part}/prepare")
    if not runner.dry_run and not marker.exists():
        sys.exit(f"replicate: preparing {name} failed; see {work / 'logs' / 'prepare.log'}")


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


def verdicts(work: Path, args) -> int:
    """RECORD/COMPARISON/runs.csv (committed: one row per finished run of WORK, with its config,
    checkpoint sha256, data fingerprints and every metric), then, computed from that file alone,
    RECORD/COMPARISON/verdicts.md and WORK/verdicts/verdicts.md (per-model and per-run tables, the
    per-claim verdicts; the latter with curves and machine time). Without finished runs in WORK the
    recorded runs.csv is used as it is: the verdicts are recomputed from the repository."""
    iw = {part: args.iw_samples or PARTS[part]["iw_samples"] for part in PARTS}
    comparison = args.comparison or ("cpu-scale" if work.name == "replication" else work.name)
    record = args.record / comparison / "runs.csv"
    found = V.collect(work, iw)
    if not found.empty:
        V.write_runs(found, record)
    elif not record.exists():
        print(f"replicate: no finished runs in {work} and no {record}", flush=True)
        return 1
    frame = V.read_runs(record)  # every number below comes from the committed file
    out = work / "verdicts"
    figures = {part: V.curves_figure(work, part, FIGURE_MODELS[part], out / f"curves-{part}.png") for part in PARTS
               if not frame.empty and (frame["part"] == part).any()}
    atomic_write_text(record.with_name("verdicts.md"), verdicts_markdown(frame, record))
    atomic_write_text(out / "verdicts.md", verdicts_markdown(frame, record, figures, V.machine_time(work)))
    print(verdicts_markdown(frame, record) + f"\nwritten: {record}, {record.with_name('verdicts.md')}, "
          f"{out / 'verdicts.md'}", flush=True)
    return 0


def verdicts_markdown(frame, source: Path, figures: dict | None = None, time: str = "") -> str:
    """The verdicts page from the per-run frame of runs.csv (`source`): per part a model table and a
    run table (with its curves figure when given), then the claims and their verdicts."""
    shown = source.relative_to(REPO) if source.is_relative_to(REPO) else source
    sections = ["# Replication verdicts", "", f"Computed from `{shown}` by `benchmarks/replicate.py verdicts`.", ""]
    sections += [time, ""] if time else []
    for part in PARTS:
        if frame.empty or not (frame["part"] == part).any():
            continue
        figure = (figures or {}).get(part)
        sections += [f"## {part}", "", V.model_table(frame, part, FIGURE_MODELS[part]), "",
                     "Per run:", "", V.run_table(frame, part, FIGURE_MODELS[part]), "",
                     *([f"![curves]({figure.name})", ""] if figure else [])]
    return "\n".join([*sections, "## Claims", "", V.claims_markdown(frame)]) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
