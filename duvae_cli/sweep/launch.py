"""Local workers: each point's commands (sweep/points.py) run as `duvae` subprocesses, `workers` points
at a time. This loop runs them for `duvae sweep --launcher local` and inside each SLURM array task.

Every worker is started in its own session, so a Ctrl-C at the terminal reaches the driver only, and
the driver decides what a stop means. On SIGINT or SIGTERM no new command starts; each running
worker's process group gets SIGINT (`duvae train` finishes its step and saves its checkpoint,
interrupt.py); the driver waits for them (STOP_GRACE_S at most; a second signal cuts the wait short),
SIGKILLs whatever is left in their groups, and raises `Interrupted`, one line naming the command that
resumes: exit 130 (SIGINT) or 143 (SIGTERM).
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass
from typing import Generator

from duvae_cli.errors import DuvaeError
from duvae_cli.interrupt import Interrupted, StopFlag, recorded
from duvae_cli.progress import SILENT, Reporter
from duvae_cli.sweep.points import PointSpec, point_steps

STOP_GRACE_S = 60.0  # how long stopped workers get to save before they are killed
POLL_S = 0.2


class Tally:
    """The sweep's "k of N done" lines, one per point as it finishes (through the Reporter), with the
    time since the sweep started and the time left at the pace of the points that ran here (points
    skipped as already finished do not count towards the pace)."""

    def __init__(self, total: int, reporter: Reporter = SILENT, done: int = 0):
        self.total, self.reporter, self.done = total, reporter, done
        self.ran, self.start = 0, time.monotonic()

    def note(self, result: dict) -> dict:
        self.done += 1
        self.ran += result.get("status") != "skipped"
        ran = f" (ran {', '.join(result['ran'])})" if result.get("ran") else ""
        error = f": {result['error']}" if result.get("error") else ""
        self.reporter.log(f"{self.done} of {self.total} done: {result['name']} {result['status']}{ran}{error}"
                          f"{self.pace()}")
        return result

    def pace(self) -> str:
        """'; 12m elapsed, about 30m left' (nothing before a point has run here)."""
        elapsed = time.monotonic() - self.start
        if not self.ran:
            return ""
        left = (self.total - self.done) * elapsed / self.ran
        return f"; {elapsed / 60:.1f} min elapsed" + (f", about {left / 60:.1f} min left" if left else "")


@dataclass
class _Worker:
    spec: PointSpec
    steps: Generator
    proc: subprocess.Popen | None = None


def run_local(specs: list[PointSpec], workers: int, tally: Tally, resume: str = "") -> list[dict]:
    """Every point's commands, `workers` points at a time; a failed point is reported and the others
    go on. `resume`: the command named in the one line of a stop."""
    queue, running, results = deque(specs), [], []
    with recorded() as stop:
        try:
            while (queue or running) and not stop.requested:
                while queue and len(running) < workers and not stop.requested:
                    worker = _Worker(queue[0], point_steps(queue.popleft()))
                    _finish_or_keep(worker, _next(worker, None), running, results, tally)
                for worker in [w for w in running if w.proc.poll() is not None]:
                    running.remove(worker)
                    _finish_or_keep(worker, _next(worker, worker.proc.returncode), running, results, tally)
                time.sleep(POLL_S if running else 0)
        finally:  # a stop, or an unexpected error here: no worker outlives the driver
            stopped = [w.spec.name for w in running]
            _stop([w.proc for w in running], stop)
        if stop.requested:
            raise stopped_line(stop.signals[0], f"{len(stopped)} running point(s) stopped at their last "
                               f"checkpoint, {tally.done} of {tally.total} done", resume)
    return results


def _finish_or_keep(worker: _Worker, result: dict | None, running: list, results: list, tally: Tally) -> None:
    if result is None:
        running.append(worker)
    else:
        results.append(tally.note(result))


def _next(worker: _Worker, code: int | None) -> dict | None:
    """Start the point's next command (None), or its result once it has none left."""
    try:
        argv = next(worker.steps) if code is None else worker.steps.send(code)
    except StopIteration as end:
        return end.value
    except DuvaeError as exc:  # e.g. its run directory cannot be read or written: this point fails
        return {"name": worker.spec.name, "status": "failed", "error": str(exc), "ran": []}
    worker.proc = _spawn(worker.spec, argv)
    return None


def _spawn(spec: PointSpec, argv: list[str]) -> subprocess.Popen:
    with open(spec.log_path, "a", encoding="utf-8") as log:
        log.write(f"$ duvae {shlex.join(argv)}\n")
        log.flush()
        return subprocess.Popen([sys.executable, "-m", "duvae_cli", *argv], stdout=log, stderr=log,
                                stdin=subprocess.DEVNULL, env={**os.environ, **spec.env}, start_new_session=True)


def _stop(procs: list[subprocess.Popen], stop: StopFlag, grace: float = STOP_GRACE_S) -> None:
    """SIGINT to each worker's group, wait (until `grace` or another signal), then SIGKILL the groups:
    also what a worker that exited left behind in its group."""
    _signal_groups(procs, signal.SIGINT)
    deadline, signals = time.monotonic() + grace, len(stop.signals)
    while any(p.poll() is None for p in procs):
        if time.monotonic() > deadline or len(stop.signals) > max(signals, 1):
            _signal_groups(procs, signal.SIGKILL)
        time.sleep(POLL_S)
    _signal_groups(procs, signal.SIGKILL)


def _signal_groups(procs: list[subprocess.Popen], signum: int) -> None:
    for proc in procs:  # start_new_session: the worker's process group id is its pid
        try:
            os.killpg(proc.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


def stopped_line(signum: int, what: str, resume: str, after: str = "") -> Interrupted:
    """The one line a stopped sweep ends with; exit 128 + the signal (130 SIGINT, 143 SIGTERM)."""
    how = f"resume{after} with: {resume}" if resume else f"run the same command again{after} to resume"
    stopped = Interrupted(f"sweep stopped by {signal.Signals(signum).name}: {what}; {how}")
    stopped.exit_code = 128 + signum
    return stopped
