"""One sweep point: an ordinary run directory, trained (or resumed) by a `duvae train` subprocess and
followed by the `--then` commands. `point_steps` yields them one at a time to whoever runs them: the
local workers or a SLURM array task (sweep/launch.py).

A point is `done` when its manifest says it finished after its last resume with at least the epochs
asked for; `resume` when it has a last checkpoint; `restart` when an attempt died before its first
checkpoint (the directory holds nothing worth keeping and is removed); `new` otherwise.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generator

from duvae_cli.errors import DuvaeError, UsageError
from duvae_cli.runs.layout import CHECKPOINTS, checkpoint_path, old_checkpoint_path
from duvae_cli.sweep.then import checkpoint_of, checkpoint_sha, is_current, read_records, record, supersede

THEN_COMMANDS = ("evaluate", "classify", "visualize")  # commands that take a run directory
NOT_COMPARED = ("epochs", "device")  # may differ between a point's saved config and the sweep's


@dataclass(frozen=True)
class PointSpec:
    name: str
    run_dir: str
    config_path: str  # the point's resolved config (JSON), what `duvae train --config` reads
    config: dict
    train_args: tuple[str, ...] = ()  # --log ..., --log-every N
    thens: tuple[str, ...] = ()
    env: dict = field(default_factory=dict)  # OMP_NUM_THREADS etc.
    log_path: str = ""  # the point's stdout and stderr


def then_args(then: str, trackers: tuple[str, ...]) -> list[str]:
    """`--then "evaluate --iw-samples 500"` -> its argv; evaluate/classify also log to the sweep's trackers."""
    args = shlex.split(then)
    if not args or args[0] not in THEN_COMMANDS:
        raise UsageError(f"--then {then!r}: must start with one of: {', '.join(THEN_COMMANDS)}")
    if args[0] in ("evaluate", "classify") and "--log" not in args:
        args += [a for kind in trackers for a in ("--log", kind)]
    return args


def point_status(run_dir: Path, wanted: dict) -> str:
    if not run_dir.exists():
        return "new"
    if not (run_dir / "config.json").is_file():
        leftovers = [p for p in run_dir.iterdir() if not (p.name == CHECKPOINTS and not any(p.iterdir()))]
        if leftovers:
            raise DuvaeError(f"{run_dir}: exists and is not a duvae run (no config.json); move it away")
        return "restart"  # died between creating the directory and writing its config
    if not (checkpoint_path(run_dir, "last").is_file() or old_checkpoint_path(run_dir, "last").is_file()):
        return "restart"  # died before its first checkpoint: nothing to keep
    saved = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    if wanted.get("precision") == "auto":  # a run stores the precision `auto` resolved to
        wanted = {**wanted, "precision": saved.get("precision")}
    differ = sorted(k for k in set(saved) | set(wanted)
                    if k not in NOT_COMPARED and saved.get(k) != wanted.get(k))
    if differ:
        raise DuvaeError(f"{run_dir}: made with a different config ({', '.join(differ)}); "
                         "use another --root for a different sweep")
    info = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    finished = info.get("finished_utc", "")
    if finished and finished >= max(info.get("resumed_utc", [""])) and saved["epochs"] >= wanted["epochs"]:
        return "done"
    return "resume"


def point_steps(spec: PointSpec) -> Generator[list[str], int, dict]:
    """The point's commands, one at a time: yields a `duvae` argv and receives its exit code; returns
    {"name", "status", "error", "ran"}. A failed command ends the point, never the sweep. A `--then`
    step runs unless it last ran on the current file of the checkpoint it reads (sweep/then.py)."""
    run_dir = Path(spec.run_dir)
    status = point_status(run_dir, spec.config)
    if status == "restart":
        shutil.rmtree(run_dir)
    ran = []
    for argv in _train_argv(spec, run_dir, status):
        ran.append(argv[0])
        code = yield argv
        if code != 0:
            return _failed(spec, argv, code, ran)
    for step in spec.thens:
        checkpoint, sha, current = _then_state(run_dir, step)
        if current:
            continue
        argv = [*shlex.split(step), str(run_dir)]
        ran.append(argv[0])
        code = yield argv
        if code != 0:
            return _failed(spec, argv, code, ran)
        if sha is not None and checkpoint_sha(run_dir, checkpoint) == sha:  # not replaced while it ran
            record(run_dir, step, checkpoint, sha)
            supersede(run_dir, argv[0], checkpoint, sha)
    return {"name": spec.name, "status": "skipped" if status == "done" else status, "error": None, "ran": ran}


def has_work(spec: PointSpec) -> bool:
    """Whether the point would run anything: training, or a `--then` step whose checkpoint changed."""
    run_dir = Path(spec.run_dir)
    return point_status(run_dir, spec.config) != "done" or not all(_then_state(run_dir, s)[2] for s in spec.thens)


def _then_state(run_dir: Path, step: str) -> tuple[str, str | None, bool]:
    """The checkpoint `step` reads, that file's sha256 (None: absent), and whether it last ran on it."""
    checkpoint = checkpoint_of(shlex.split(step))
    sha = checkpoint_sha(run_dir, checkpoint)
    return checkpoint, sha, is_current(read_records(run_dir), step, checkpoint, sha)


def _train_argv(spec: PointSpec, run_dir: Path, status: str) -> list[list[str]]:
    if status in ("new", "restart"):
        return [["train", "--config", spec.config_path, "--run-dir", str(run_dir), *spec.train_args]]
    if status == "resume":
        return [["train", "--resume", str(run_dir), "--epochs", str(spec.config["epochs"]), *spec.train_args]]
    return []


def _failed(spec: PointSpec, argv: list[str], code: int, ran: list[str]) -> dict:
    """The failed command, its last line of output (the one-line error, usually) and the log."""
    last = ""
    try:
        with open(spec.log_path, "rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - 4096))  # the end of a long log is enough
            lines = log.read().decode("utf-8", errors="replace").splitlines()
        last = next((line.strip() for line in reversed(lines) if line.strip()), "")[:300]
    except OSError:
        pass
    reason = f": {last}" if last and not last.startswith("$ duvae") else ""
    return {"name": spec.name, "status": "failed", "ran": ran,
            "error": f"`duvae {argv[0]}` exited {code}{reason}; see {spec.log_path}"}
