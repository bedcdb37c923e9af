"""One sweep point: an ordinary run directory, trained (or resumed) by a `duvae train` subprocess and
followed by the `--then` commands. `run_point` is what a worker, or a SLURM array task, executes.

A point is `done` when its manifest says it finished after its last resume with at least the epochs
asked for; `resume` when it has checkpoints/last.pt; `restart` when an attempt died before its first
checkpoint (the directory holds nothing worth keeping and is removed); `new` otherwise.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from duvae_cli.errors import DuvaeError, UsageError
from duvae_cli.io import atomic_write_text

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
        leftovers = [p for p in run_dir.iterdir() if not (p.name == "checkpoints" and not any(p.iterdir()))]
        if leftovers:
            raise DuvaeError(f"{run_dir}: exists and is not a duvae run (no config.json); move it away")
        return "restart"  # died between creating the directory and writing its config
    if not (run_dir / "checkpoints" / "last.pt").is_file():
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


def run_point(spec: PointSpec) -> dict:
    """Train or resume the point, then run its pending --then commands; never raises for a failed
    command (the sweep goes on): {"name", "status", "error"}."""
    run_dir = Path(spec.run_dir)
    status = point_status(run_dir, spec.config)
    if status == "restart":
        shutil.rmtree(run_dir)
    commands = []
    if status in ("new", "restart"):
        commands.append(["train", "--config", spec.config_path, "--run-dir", str(run_dir), *spec.train_args])
    elif status == "resume":
        commands.append(["train", "--resume", str(run_dir), "--epochs", str(spec.config["epochs"]),
                         *spec.train_args])
    done_file = run_dir / "sweep-then.json"
    for then in spec.thens:
        commands.append(shlex.split(then) + [str(run_dir)])
    env = {**os.environ, **spec.env}
    with open(spec.log_path, "a", encoding="utf-8") as log:
        for argv in commands:
            then = argv[0] != "train"
            key = shlex.join(argv[:-1]) if then else ""
            if then and key in _read_done(done_file):
                continue
            log.write(f"$ duvae {shlex.join(argv)}\n")
            log.flush()
            code = subprocess.run([sys.executable, "-m", "duvae_cli", *argv], stdout=log, stderr=log,
                                  env=env, stdin=subprocess.DEVNULL).returncode
            if code != 0:
                return {"name": spec.name, "status": "failed",
                        "error": f"`duvae {argv[0]}` exited {code}; see {spec.log_path}"}
            if then:
                _write_done(done_file, [*_read_done(done_file), key])
    return {"name": spec.name, "status": "skipped" if status == "done" else status, "error": None}


def _read_done(path: Path) -> list[str]:
    return json.loads(path.read_text(encoding="utf-8"))["then_done"] if path.is_file() else []


def _write_done(path: Path, done: list[str]) -> None:
    atomic_write_text(path, json.dumps({"then_done": done}, indent=2) + "\n")
