"""Stopping `duvae sweep`: SIGINT or SIGTERM to the driver stops its workers (each in its own session),
lets `duvae train` save, prints one line naming the command that resumes and exits 130/143, and
no process of the sweep survives. A failing point is named with its log; the others finish."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from toyruns import make_toy_data, toy_sets


def _processes() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, session id, command line) of every process (from /proc: psutil is not a
    dependency)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state ppid pgrp session ...
        found[int(entry.name)] = (int(fields[1]), int(fields[3]), cmdline)
    return found


def _wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
@pytest.mark.parametrize("signum,code", [(signal.SIGTERM, 143),  # the same path but the exit code:
                                         pytest.param(signal.SIGINT, 130, marks=pytest.mark.slow)])
def test_a_signal_to_the_sweep_stops_every_worker_and_names_the_resume_command(tmp_path, signum, code):
    data_root, root = make_toy_data(tmp_path / "data"), tmp_path / "sweep"
    argv = [sys.executable, "-m", "duvae_cli", "sweep", "--dataset", "toy", "--epochs", "100000",
            *toy_sets(data_root), "--set", "decay_from_epoch=100000",  # no plateau stop: runs until stopped
            "--root", str(root), "--grid", "gamma=0.5,0.6", "--grid", "p=1,0.8", "--workers", "2", "--quiet"]
    driver = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                              env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True)
    names = ["gamma=0.5_p=1", "gamma=0.5_p=0.8"]  # the first two points: what the two workers train
    sessions = {driver.pid}  # start_new_session: the driver's session id is its pid, and each worker's
    try:
        sessions |= set(_wait_for(lambda: _workers(driver), 60, "two workers"))
        _wait_for(lambda: all((root / n / "checkpoints" / "last.safetensors").exists() for n in names), 60, "checkpoints")
        driver.send_signal(signum)
        _, stderr = driver.communicate(timeout=30)
        _wait_for(lambda: not _in_sessions(sessions), 10, "no sweep process left")
    finally:  # whatever happened, leave nothing running
        for sid in _in_sessions(sessions):
            os.kill(sid, signal.SIGKILL)
    assert driver.returncode == code
    line = stderr.strip()
    assert line.count("\n") == 0 and line.startswith(f"duvae: sweep stopped by {signal.Signals(signum).name}: ")
    assert line.endswith("resume with: duvae " + " ".join(argv[3:]))
    for name in names:  # each worker got SIGINT and saved its step before it stopped
        log = (root / "logs" / f"{name}.log").read_text().strip().splitlines()
        assert "interrupted at epoch" in log[-1] and "continue with: duvae train --resume" in log[-1]


def _workers(driver: subprocess.Popen) -> list[int] | None:
    if driver.poll() is not None:
        pytest.fail(f"the sweep ended early: {driver.communicate()[1]}")
    found = [pid for pid, (ppid, _, cmd) in _processes().items() if ppid == driver.pid and " train " in cmd]
    return found if len(found) == 2 else None


def _in_sessions(sessions: set[int]) -> list[int]:
    return [pid for pid, (_, sid, _) in _processes().items() if sid in sessions]


def test_a_failing_point_is_named_with_its_log_and_the_others_finish(tmp_path):
    from duvae_cli.sweep import SweepOptions, plan

    data_root, root = make_toy_data(tmp_path / "data"), tmp_path / "sweep"
    sets = [s for s in toy_sets(data_root) if s != "--set"]
    broken = plan(SweepOptions(grid=("gamma=0.5", "p=1,0.8"), root=root, sets=tuple(sets),
                               flags=dict(dataset="toy", epochs=1)))[0]
    run_dir = Path(broken.run_dir)  # looks resumable, but its checkpoint is damaged
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps(broken.config))
    (run_dir / "manifest.json").write_text("{}")
    (run_dir / "checkpoints" / "last.safetensors").write_bytes(b"not a checkpoint")
    proc = subprocess.run([sys.executable, "-m", "duvae_cli", "sweep", "--dataset", "toy", "--epochs", "1",
                           *toy_sets(data_root), "--root", str(root), "--grid", "gamma=0.5", "--grid", "p=1,0.8",
                           "--workers", "2", "--then", "evaluate --iw-samples 2 --device cpu"],
                          capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    log = root / "logs" / f"{broken.name}.log"
    assert last.startswith("duvae: error: 1 of 2 points failed: gamma=0.5_p=1: `duvae train` exited 1: ")
    assert last.endswith(f"; see {log}") and "duvae: error:" in log.read_text()
    assert f"done: {broken.name} failed" in proc.stderr  # named as soon as it failed
    other = root / "gamma=0.5_p=0.8"
    assert (other / "history.csv").is_file() and (other / "metrics.csv").is_file()  # it trained and evaluated
    assert "| toy |" in proc.stdout  # and the report of the points that did
