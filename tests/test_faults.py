"""Faults on real processes (docs/reliability.md): SIGKILL and Ctrl-C during train, prepare and
evaluate, concurrent writers, stale locks, disk full. A process is stopped at a known place by
tests/faultdriver.py (no timing); every signal goes to a process this test started."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from interrupting import assert_same_run

HERE = Path(__file__).resolve().parent
TRAIN = ("train", "--dataset", "toy", "--model", "du", "--epochs", "3", "--batch-size", "32", "--latent-dim", "2",
         "--set", "embed_dim=8", "--set", "hidden_dim=8", "--checkpoint-every", "1", "--quiet")  # 8 steps/epoch


def write_corpus(path: Path, lines: int = 300, seed: int = 0) -> Path:
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(30)]
    path.write_text("".join(" ".join(rng.choice(words) for _ in range(rng.randint(3, 8))) + "\n"
                            for _ in range(lines)))
    return path


def cli(*args) -> tuple[int, str]:
    """duvae in this process: (exit code, stderr lines are checked by the callers via capsys)."""
    from duvae_cli.cli import main

    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


class Stalled:
    """`duvae ARGS` in a child process, stopped at `point` (faultdriver.py) until signalled."""

    def __init__(self, cwd: Path, point: str, n: int, *args):
        self.ready = cwd / f".ready-{point}-{n}"
        self.ready.unlink(missing_ok=True)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parent)}
        self.proc = subprocess.Popen([sys.executable, str(HERE / "faultdriver.py"), point, str(n), str(self.ready),
                                      "--", *map(str, args)], cwd=cwd, env=env, stderr=subprocess.PIPE, text=True)
        while not self.ready.exists():  # not a timing: the child writes it at the stop point
            if self.proc.poll() is not None:
                raise AssertionError(f"child ended before its stop point: {self.proc.stderr.read()}")
            time.sleep(0.05)

    def signal(self, signum: int) -> tuple[int, list[str]]:
        self.proc.send_signal(signum)
        _, err = self.proc.communicate(timeout=120)
        return self.proc.returncode, err.strip().splitlines()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """data/toy (300 sentences, 34 words) and runs/whole: the uninterrupted reference run."""
    root = tmp_path_factory.mktemp("faults")
    corpus = write_corpus(root / "corpus.txt")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert cli("prepare", "text", "--train", corpus, "--as", "toy", "--quiet") == 0
        assert cli(*TRAIN, "--run-dir", "runs/whole") == 0
    finally:
        os.chdir(cwd)
    return root


def test_sigkill_and_ctrl_c_in_training_then_resume_is_bit_identical(workspace, monkeypatch, capsys):
    monkeypatch.chdir(workspace)
    first, second = sorted(random.Random().sample(range(2, 24), 2))  # checkpoints to stop after
    child = Stalled(workspace, "checkpoint", first, *TRAIN, "--run-dir", "runs/parts")
    try:
        capsys.readouterr()
        assert cli("train", "--resume", "runs/parts") == 1  # a second writer of the run: refused at once
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"in use by pid {child.proc.pid} on host" in err[0], err
        assert child.signal(signal.SIGKILL)[0] == -signal.SIGKILL
    finally:
        child.kill()
    assert (workspace / "runs" / "parts" / ".lock").exists()  # stale: its holder is dead

    child = Stalled(workspace, "checkpoint", second - first + 1, "train", "--resume", "runs/parts", "--quiet")
    try:
        code, err = child.signal(signal.SIGINT)
    finally:
        child.kill()
    assert code == 130 and len(err) == 1, err
    assert err[0].startswith("duvae: interrupted at epoch ") and \
        err[0].endswith("; continue with: duvae train --resume runs/parts"), err

    assert cli("train", "--resume", "runs/parts", "--quiet") == 0
    assert_same_run(workspace / "runs" / "whole", workspace / "runs" / "parts")


def test_kill_and_ctrl_c_during_prepare_keep_the_dataset(workspace, monkeypatch, capsys):
    monkeypatch.chdir(workspace)
    corpus = write_corpus(workspace / "other.txt", seed=1)
    assert cli("prepare", "text", "--train", corpus, "--as", "keep", "--quiet") == 0
    path = workspace / "data" / "keep" / "dataset.h5"
    before = path.read_bytes()
    again = ("prepare", "text", "--train", corpus, "--as", "keep", "--seed", 5, "--force", "--quiet")
    child = Stalled(workspace, "prepare-write", 1, *again)
    try:
        capsys.readouterr()
        assert cli(*again) == 1  # concurrent prepare of the same dataset
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"dataset {Path('data/keep/dataset.h5')}: in use by pid {child.proc.pid}" in err[0]
        assert child.signal(signal.SIGKILL)[0] == -signal.SIGKILL
    finally:
        child.kill()
    assert path.read_bytes() == before
    left = sorted(p.name for p in path.parent.iterdir())  # SIGKILL may leave its temp file (never read)

    child = Stalled(workspace, "prepare-write", 1, *again)  # takes the dead process's stale lock
    try:
        code, err = child.signal(signal.SIGINT)
    finally:
        child.kill()
    assert code == 130 and err == [f"duvae: interrupted; {Path('data/keep/dataset.h5')} left as it was"], err
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == left  # Ctrl-C removed its own temp file


def test_kill_and_ctrl_c_during_evaluate_keep_earlier_outputs(workspace, monkeypatch):
    monkeypatch.chdir(workspace)
    run = workspace / "runs" / "whole"
    assert cli("evaluate", run, "--split", "valid", "--iw-samples", 4, "--quiet") == 0
    before = {name: (run / name).read_bytes() for name in ("metrics.h5", "metrics.csv")}
    again = ("evaluate", run, "--split", "valid", "--iw-samples", 4, "--seed", 7, "--batch-size", 4, "--quiet")
    for signum in (signal.SIGKILL, signal.SIGINT):
        child = Stalled(workspace, "evaluate-batch", 2, *again)
        try:
            code, err = child.signal(signum)
        finally:
            child.kill()
        assert {name: (run / name).read_bytes() for name in before} == before
    assert code == 130 and len(err) == 1 and err[0].startswith("duvae: interrupted; finished examples are kept in")
    assert list((run / "metrics.partial").glob("valid-*/part-*.npz"))  # the next run resumes from them
    assert cli(*again) == 0


def test_disk_full_names_the_file_and_keeps_the_previous_checkpoint(workspace, monkeypatch, capsys):
    """ENOSPC simulated in torch.save: on the first checkpoint the run leaves nothing behind (no
    dead end, runs/latest untouched); later, the previous last.pt stays intact."""
    import torch

    from duvae_cli.train import run as run_module

    monkeypatch.chdir(workspace)
    latest = os.readlink(workspace / "runs" / "latest") if (workspace / "runs" / "latest").is_symlink() else None
    real, calls, kept = torch.save, [], {}

    def full_disk_after(n):
        def save(payload, path):
            calls.append(path)
            if len(calls) > n:
                last = workspace / "runs" / "full" / "checkpoints" / "last.pt"
                kept["bytes"] = last.read_bytes() if last.exists() else None
                raise RuntimeError("[enforce fail at inline_container.cc:672] unexpected pos 64 vs 0")
            real(payload, path)
        return save

    monkeypatch.setattr(run_module.torch, "save", full_disk_after(0))
    capsys.readouterr()
    assert cli(*TRAIN, "--run-dir", "runs/full") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "runs/full/checkpoints/last.pt: cannot write (write failed, disk full?" in err[0], err
    assert not (workspace / "runs" / "full").exists()
    assert (os.readlink(workspace / "runs" / "latest") if latest else None) == latest

    calls.clear()
    monkeypatch.setattr(run_module.torch, "save", full_disk_after(5))
    assert cli(*TRAIN, "--run-dir", "runs/full") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot write" in err[0] and "the previous file is intact" in err[0], err
    assert kept["bytes"] == (workspace / "runs" / "full" / "checkpoints" / "last.pt").read_bytes()
    assert os.readlink(workspace / "runs" / "latest") == "full"  # it has a checkpoint
    assert not list((workspace / "runs" / "full" / "checkpoints").glob(".*tmp"))


@pytest.mark.slow
def test_twenty_sigkills_then_resume_is_bit_identical(workspace, monkeypatch):
    monkeypatch.chdir(workspace)
    args = (*TRAIN, "--run-dir", "runs/twenty")
    for _ in range(20):  # each process is killed after its first save: a step's or an epoch's
        child = Stalled(workspace, "checkpoint", 1, *args)
        try:
            assert child.signal(signal.SIGKILL)[0] == -signal.SIGKILL
        finally:
            child.kill()
        args = ("train", "--resume", "runs/twenty", "--quiet")
    assert cli("train", "--resume", "runs/twenty", "--quiet") == 0
    assert_same_run(workspace / "runs" / "whole", workspace / "runs" / "twenty")
