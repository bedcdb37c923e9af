"""Stand-ins for SLURM's `sbatch`, `squeue` and `sacct`, put on PATH by `install(bin_dir, state_dir)`.

Each records its arguments (STATE/calls.jsonl). `sbatch` keeps a copy of the script it was sent and
runs the job array's tasks on this machine, in a background process, as SLURM would: at most the
array's `%N` at once, each task `bash SCRIPT` in `--chdir` with SLURM_ARRAY_JOB_ID and
SLURM_ARRAY_TASK_ID set and its output in `--output` (%A and %a expanded). `squeue --jobs=J` lists the
tasks not finished; `sacct` reports how each ended. STATE/state.json also keeps the largest number of
tasks that ran at once.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

JOB = "4242"


def install(bin_dir: Path, state_dir: Path) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    state_dir.mkdir(parents=True, exist_ok=True)
    for tool in ("sbatch", "squeue", "sacct"):
        path = bin_dir / tool
        path.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(__file__)} {tool} "
                        f"{shlex.quote(str(state_dir))} \"$@\"\n")
        path.chmod(0o755)


def calls(state_dir: Path) -> list[list[str]]:
    path = state_dir / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def sbatch_options(script: str) -> dict[str, str]:
    return dict(re.findall(r"^#SBATCH --([\w-]+)=(\S+)$", script, re.M))


def _state(state_dir: Path, **update) -> dict:
    path = state_dir / "state.json"
    state = json.loads(path.read_text()) if path.exists() else {}
    if update:
        state.update(update)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, path)
    return state


def sbatch(state_dir: Path, args: list[str]) -> int:
    script = Path(args[-1]).read_text()
    (state_dir / "submitted.sbatch").write_text(script)
    first, last, _ = map(int, re.fullmatch(r"(\d+)-(\d+)%(\d+)", sbatch_options(script)["array"]).groups())
    _state(state_dir, pending=list(range(first, last + 1)), running=[], done={}, peak=0)
    subprocess.Popen([sys.executable, __file__, "run-array", str(state_dir)], start_new_session=True,
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(JOB if "--parsable" in args else f"Submitted batch job {JOB}")
    return 0


def run_array(state_dir: Path, args: list[str]) -> int:
    script = state_dir / "submitted.sbatch"
    options = sbatch_options(script.read_text())
    most = int(options["array"].rsplit("%", 1)[1])
    state, running = _state(state_dir), {}
    pending, done, peak = state["pending"], state["done"], 0
    while pending or running:
        while pending and len(running) < most:
            task = pending.pop(0)
            out = options["output"].replace("%A", JOB).replace("%a", str(task))
            env = {**os.environ, "SLURM_ARRAY_JOB_ID": JOB, "SLURM_ARRAY_TASK_ID": str(task),
                   "SLURM_JOB_ID": str(int(JOB) + 1 + task)}
            with open(out, "w") as handle:
                running[task] = subprocess.Popen(["bash", str(script)], cwd=options["chdir"], env=env,
                                                 stdout=handle, stderr=subprocess.STDOUT)
        peak = max(peak, len(running))
        for task, proc in list(running.items()):
            if proc.poll() is not None:
                done[str(task)] = proc.returncode
                del running[task]
        _state(state_dir, pending=pending, running=list(running), done=done, peak=peak)
        time.sleep(0.1)
    return 0


def squeue(state_dir: Path, args: list[str]) -> int:
    state = _state(state_dir)
    if f"--jobs={JOB}" not in args or not state:
        print("slurm_load_jobs error: Invalid job id specified", file=sys.stderr)
        return 1
    for task in [*state["running"], *state["pending"]]:
        print(f"{JOB}_{task}")
    return 0


def sacct(state_dir: Path, args: list[str]) -> int:
    for task, code in _state(state_dir).get("done", {}).items():
        print(f"{JOB}_{task}|{'COMPLETED' if code == 0 else 'FAILED'}|{code}:0")
    return 0


if __name__ == "__main__":
    tool, state_dir, rest = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
    if tool != "run-array":
        with open(state_dir / "calls.jsonl", "a") as log:
            log.write(json.dumps([tool, *rest]) + "\n")
    tools = {"sbatch": sbatch, "squeue": squeue, "sacct": sacct, "run-array": run_array}
    sys.exit(tools[tool](state_dir, rest))
