"""`--launcher slurm`: the points as one SLURM job array, through a batch script duvae writes itself.

    ROOT/slurm/sweep.sbatch        the script sent to `sbatch` (`--dry-run` prints it instead)
    ROOT/slurm/tasks.json          the array's points (PointSpec as JSON: data, nothing to unpickle)
    ROOT/slurm/job.json            the job id of the last submission
    ROOT/slurm/<job>_<task>.out    each task's own output (SLURM expands %A_%a)
    ROOT/slurm/results/<job>_<task>.json   each task's result, written by `duvae sweep-task`

Task i runs `duvae sweep-task ROOT/slurm/tasks.json i`: the same loop as a local worker, one point.
The driver waits for the array with `squeue` (every 1 s, doubling to 30 s), reports each point as
its result appears, and asks `sacct` how a task that left no result ended.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from duvae_cli.errors import DuvaeError, UsageError
from duvae_cli.interrupt import StopFlag
from duvae_cli.io import atomic_write_text
from duvae_cli.options import Option, options_dataclass
from duvae_cli.sweep.launch import POLL_S, Tally, stopped_line
from duvae_cli.sweep.points import PointSpec

SIGNAL_AHEAD_S = 120  # `--signal=B:INT@120`: SIGINT before the time limit, so `duvae train` saves
MAX_POLL_S = 30.0


def parse_time(text: str | int) -> int:
    """--slurm-time: minutes ("90") or [D-]HH:MM[:SS] -> whole minutes (at least 1); an int is minutes."""
    if isinstance(text, int):
        return max(1, text)
    match = re.fullmatch(r"(?:(\d+)-)?(\d+):(\d{2})(?::(\d{2}))?", text.strip())
    if text.strip().isdigit():
        return max(1, int(text))
    if not match:
        raise UsageError(f"--slurm-time {text!r}: give minutes (90) or HH:MM[:SS] (1:30:00)")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return max(1, days * 1440 + hours * 60 + minutes + (seconds > 0))


def _slurm(word: str, type_: type, default, help: str, name: str | None = None, **kw) -> Option:
    """`--slurm-WORD`, the field `name` (default: WORD)."""
    return Option(name or word, type_, default, f"slurm: {help}", flags=(f"--slurm-{word}",),
                  panel="SLURM options (--launcher slurm)", **kw)


# `duvae sweep --launcher slurm`: what each task of the job array asks for.
SLURM_OPTIONS = (
    _slurm("partition", str, None, "partition."),
    _slurm("gpus", int, 0, "GPUs per point.", range=">= 0"),
    _slurm("time", str, "60", "time limit per point, minutes or HH:MM:SS.", name="time_min", convert=parse_time),
    _slurm("cpus", int, 1, "CPUs per point (and its OMP_NUM_THREADS).", range=">= 1"),
    _slurm("mem", str, None, "memory per point, e.g. 16G."),
    _slurm("account", str, None, "account to charge."),
    _slurm("qos", str, None, "quality of service."),
    _slurm("constraint", str, None, "node features, e.g. a100."),
    _slurm("setup", str, (), "a shell line run before each point, e.g. 'module load cuda' (repeatable, in order).",
           multiple=True),
)


@options_dataclass(SLURM_OPTIONS)
class SlurmOptions:
    """What each array task asks SLURM for (time_min: minutes), and the shell lines (module load, source
    venv/bin/activate) run before each task; `check_options` checks they fit one script line each."""


def check_options(options: SlurmOptions) -> None:
    """Each value goes into one line of a shell script: one line, no stray characters."""
    for name in ("partition", "account", "qos", "constraint", "mem"):
        value = getattr(options, name)
        if value is not None and not re.fullmatch(r"[\w.,:&|()\[\]*+=@/-]+", value):
            raise UsageError(f"--slurm-{name} {value!r}: expected one word (letters, digits, . , : & | - _)")
    if options.mem is not None and not re.fullmatch(r"\d+[KMGT]?", options.mem):
        raise UsageError(f"--slurm-mem {options.mem!r}: expected a size such as 16G or 4000M")
    for line in options.setup:
        if "\n" in line or "\r" in line or not line.strip():
            raise UsageError(f"--slurm-setup {line!r}: give one non-empty shell line per --slurm-setup")


def require_sbatch() -> None:
    if shutil.which("sbatch") is None:
        raise UsageError("--launcher slurm: sbatch is not on PATH (no SLURM on this machine); use "
                         "--launcher local, or add --dry-run to print the job script")


def sbatch_script(specs: list[PointSpec], root: Path, workers: int, options: SlurmOptions) -> str:
    """The job array script: #SBATCH lines, the setup lines, one `duvae sweep-task` per array task."""
    slurm = (Path.cwd() / root / "slurm").resolve()
    lines = ["#!/bin/bash", f"#SBATCH --job-name=duvae-sweep-{root.name}",
             f"#SBATCH --array=0-{len(specs) - 1}%{workers}", "#SBATCH --ntasks=1",
             f"#SBATCH --cpus-per-task={options.cpus}", f"#SBATCH --time={options.time_min}"]
    lines += [f"#SBATCH --gres=gpu:{options.gpus}"] if options.gpus else []
    lines += [f"#SBATCH --{key}={value}" for key, value in (
        ("mem", options.mem), ("partition", options.partition), ("account", options.account),
        ("qos", options.qos), ("constraint", options.constraint)) if value]
    lines += [f"#SBATCH --chdir={_sbatch_value(Path.cwd())}",
              f"#SBATCH --output={_sbatch_value(slurm)}/%A_%a.out"]
    if options.time_min * 60 >= 5 * SIGNAL_AHEAD_S:
        lines.append(f"#SBATCH --signal=B:INT@{SIGNAL_AHEAD_S}")
    lines += [f"# task {i}: {spec.name}" for i, spec in enumerate(specs)]
    lines += list(options.setup)
    command = [sys.executable, "-m", "duvae_cli", "sweep-task", str(slurm / "tasks.json")]
    lines.append(f'exec {shlex.join(command)} "$SLURM_ARRAY_TASK_ID"')
    return "\n".join(lines) + "\n"


def _sbatch_value(path: Path) -> str:
    """A folder in an #SBATCH line: SLURM would expand a % in it, and sbatch reads no quotes or spaces."""
    text = str(path)
    if any(c in text for c in '%"\'') or any(c.isspace() for c in text):
        raise UsageError(f"--root {text!r}: a path with spaces, quotes or % cannot go into SLURM's #SBATCH "
                         "lines; use another --root (or working directory)")
    return text


def run_slurm(specs: list[PointSpec], root: Path, workers: int, options: SlurmOptions, tally: Tally,
              stop: StopFlag, resume: str = "") -> list[dict]:
    """Submit the points as one array and wait for it; each point's result as it appears."""
    folder = root / "slurm"
    _refuse_if_running(folder)
    atomic_write_text(folder / "tasks.json", json.dumps({"points": [asdict(s) for s in specs]}, indent=1) + "\n")
    atomic_write_text(folder / "sweep.sbatch", sbatch_script(specs, root, workers, options))
    job = _submit(folder / "sweep.sbatch")
    atomic_write_text(folder / "job.json", json.dumps({"job": job, "points": [s.name for s in specs]}) + "\n")
    tally.reporter.log(f"submitted {len(specs)} points as SLURM job {job} (at most {workers} at once)")
    results = _wait(job, specs, folder, tally, stop, resume)
    states = _sacct_states(job) if len(results) < len(specs) else {}
    for i, spec in enumerate(specs):
        if i not in results:
            state = states.get(f"{job}_{i}", "in an unknown state")
            results[i] = tally.note({"name": spec.name, "status": "failed", "ran": [], "error":
                                     f"SLURM task {job}_{i} ended {state} without a result; see "
                                     f"{folder / f'{job}_{i}.out'} and {spec.log_path}"})
    return [results[i] for i in sorted(results)]


def _refuse_if_running(folder: Path) -> None:
    try:
        job = json.loads((folder / "job.json").read_text(encoding="utf-8"))["job"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    if _active(job):
        raise DuvaeError(f"SLURM job {job} of this sweep still runs ({folder / 'job.json'}); wait for it to "
                         f"end (squeue -j {job}) or stop it (scancel {job}), then run this command again")


def _submit(script: Path) -> str:
    proc = _slurm(["sbatch", "--parsable", str(script)])
    job = proc.stdout.strip().split(";")[0]  # --parsable: "jobid[;cluster]"
    if proc.returncode != 0 or not job.isdigit():
        raise DuvaeError(f"sbatch {script}: exited {proc.returncode}: {_first_line(proc) or 'no job id'}")
    return job


def _wait(job: str, specs: list[PointSpec], folder: Path, tally: Tally, stop: StopFlag, resume: str) -> dict:
    """Each task's result as it appears (the folder is looked at every second); whether the job still
    runs is asked of squeue after 1 s, then at intervals doubling to 30 s."""
    results, delay, ask_at = {}, 1.0, time.monotonic() + 1.0
    while _collect(job, specs, folder, tally, results) < len(specs):
        if time.monotonic() >= ask_at:
            if not _active(job):
                _collect(job, specs, folder, tally, results)  # written just before the task ended
                break
            delay = min(2 * delay, MAX_POLL_S)
            ask_at = time.monotonic() + delay
        for _ in range(round(1 / POLL_S)):
            if stop.requested:
                raise stopped_line(stop.signals[0], f"SLURM job {job} keeps running (scancel {job} stops it)",
                                   resume, after=" once the job has ended")
            time.sleep(POLL_S)
    return results


def _collect(job: str, specs: list[PointSpec], folder: Path, tally: Tally, results: dict) -> int:
    for i, spec in enumerate(specs):
        path = folder / "results" / f"{job}_{i}.json"
        if i not in results and path.is_file():
            results[i] = tally.note(json.loads(path.read_text(encoding="utf-8")))
    return len(results)


def _active(job: str, tries: int = 5) -> bool:
    """Whether squeue still lists a task of `job`. An unknown job id has ended; other squeue errors
    (a busy controller) are retried, then reported."""
    for attempt in range(tries):
        proc = _slurm(["squeue", "--noheader", "--format=%i", f"--jobs={job}"])
        if proc.returncode == 0:
            return bool(proc.stdout.strip())
        if "invalid job id" in proc.stderr.lower():
            return False
        time.sleep(min(2 ** attempt, MAX_POLL_S))
    raise DuvaeError(f"squeue --jobs={job}: exited {proc.returncode}: {_first_line(proc)}")


def _sacct_states(job: str) -> dict[str, str]:
    """{"<job>_<task>": "TIMEOUT", ...}; {} when sacct is missing or fails (no accounting)."""
    if shutil.which("sacct") is None:
        return {}
    proc = _slurm(["sacct", "--noheader", "--parsable2", "--allocations", "--format=JobID,State,ExitCode",
                   f"--jobs={job}"])
    rows = [line.split("|") for line in proc.stdout.splitlines() if line.count("|") >= 2]
    return {r[0]: f"{r[1].split()[0]} (exit {r[2]})" for r in rows if r[1].strip()} if proc.returncode == 0 else {}


def _slurm(argv: list[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DuvaeError(f"{argv[0]}: {exc}") from None


def _first_line(proc: subprocess.CompletedProcess) -> str:
    return next((line.strip() for line in (proc.stderr + proc.stdout).splitlines() if line.strip()), "")


def run_task(tasks_file: Path, index: int) -> dict:
    """Array task `index` (`duvae sweep-task`): its point's commands, its result file written."""
    from duvae_cli.sweep.launch import run_local
    from duvae_cli.runs.run import read_json

    points = read_json(tasks_file).get("points", [])
    if not 0 <= index < len(points):
        raise UsageError(f"{tasks_file}: no task {index} (it has {len(points)})")
    raw = points[index]
    spec = PointSpec(**{**raw, "train_args": tuple(raw["train_args"]), "thens": tuple(raw["thens"])})
    result = run_local([spec], 1, Tally(1))[0]
    job = os.environ.get("SLURM_ARRAY_JOB_ID", "local")
    atomic_write_text(Path(tasks_file).parent / "results" / f"{job}_{index}.json", json.dumps(result) + "\n")
    return result

