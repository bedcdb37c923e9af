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
    """ENOSPC simulated in the checkpoint's write: on the first checkpoint the run leaves nothing
    behind (no dead end, runs/latest untouched); later, the previous last checkpoint stays intact."""
    import errno

    from duvae_cli.runs import checkpoint as checkpoint_module

    monkeypatch.chdir(workspace)
    latest = os.readlink(workspace / "runs" / "latest") if (workspace / "runs" / "latest").is_symlink() else None
    calls, kept = [], {}

    class Full:
        """A file whose writes fail as on a full disk."""

        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            last = workspace / "runs" / "full" / "checkpoints" / "last.safetensors"
            kept["bytes"] = last.read_bytes() if last.exists() else None
            raise OSError(errno.ENOSPC, "No space left on device")

    def full_disk_after(n):
        def fake_open(path, mode="r", *args, **kwargs):
            handle = open(path, mode, *args, **kwargs)
            calls.append(path)
            return Full(handle) if len(calls) > n else handle
        return fake_open

    monkeypatch.setattr(checkpoint_module, "open", full_disk_after(0), raising=False)
    capsys.readouterr()
    assert cli(*TRAIN, "--run-dir", "runs/full") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "runs/full/checkpoints/last.safetensors: cannot write (No space left on device)" in err[0], err
    assert not (workspace / "runs" / "full").exists()
    assert (os.readlink(workspace / "runs" / "latest") if latest else None) == latest

    calls.clear()
    monkeypatch.setattr(checkpoint_module, "open", full_disk_after(5), raising=False)
    assert cli(*TRAIN, "--run-dir", "runs/full") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot write" in err[0] and "the previous file is intact" in err[0], err
    assert kept["bytes"] == (workspace / "runs" / "full" / "checkpoints" / "last.safetensors").read_bytes()
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


# ------------------------------------------------------------------------------ issue #28 cases ---
# Each case of the fault round's leftovers, and a moved or read-only run: one line naming the option
# or file, exit 2 for usage errors and 1 for the rest, nothing half-written (docs/reliability.md).


def write_labelled(path: Path, lines: int = 300) -> Path:
    rng = random.Random(3)
    path.write_text("".join(f"{i % 2}\t" + " ".join(f"w{rng.randrange(30)}" for _ in range(rng.randint(3, 8)))
                            + "\n" for i in range(lines)))
    return path


@pytest.fixture(scope="module")
def ws28(tmp_path_factory):
    """data/lab (labelled, 300 sentences) and runs/l trained on it for one epoch; src/lab and runs/abs,
    trained with an absolute data_root (the case where a moved run's recorded root is gone)."""
    root = tmp_path_factory.mktemp("faults28")
    corpus = write_labelled(root / "lab.txt")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert cli("prepare", "text", "--train", corpus, "--as", "lab", "--quiet") == 0
        assert cli(*TRAIN, "--dataset", "lab", "--epochs", 1, "--run-dir", "runs/l") == 0
        assert cli("prepare", "text", "--train", corpus, "--as", "lab", "--out", "src", "--quiet") == 0
        assert cli(*TRAIN, "--dataset", "lab", "--epochs", 1, "--set", f"data_root={root / 'src'}",
                   "--run-dir", "runs/abs") == 0
    finally:
        os.chdir(cwd)
    return root


def one_line(capsys, *args) -> tuple[int, list[str]]:
    capsys.readouterr()
    code = cli(*args)
    return code, capsys.readouterr().err.strip().splitlines()


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its bytes: 'nothing was written' is this, unchanged."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


BAD_VALUES = [  # (args, exit code, what the one line must say)
    (("train", "--set", "hidden_dim=1e20"), 2, "--set hidden_dim=1e20: expected an integer"),
    (("train", "--set", "hidden_dim=100000000000000000000"), 2,
     "--hidden-dim 100000000000000000000: must be in [1, 16384]"),
    (("train", "--seed", "1e20"), 2, "'--seed'"),
    (("train", "--seed", "100000000000000000000"), 2, "--seed 100000000000000000000: must be in [0, 4294967295]"),
    (("train", "--log-every", "0"), 2, "--log-every 0: must be in [1, 1000000000]"),
    (("train", "--epochs", "99999999999999999999"), 2, "--epochs 99999999999999999999: must be in [1, 100000]"),
    (("train", "--device", "cuda:99"), 2, "--device cuda:99: "),
    (("generate", "runs/l", "--sample", "1e20"), 2, "'--sample'"),
    (("generate", "runs/l", "--sample", "100000000000000000000"), 2, "--sample 100000000000000000000: must be in"),
    (("generate", "runs/l", "--sample", "2", "--decode", "sample", "--temperature", "nan"), 2,
     "--temperature nan: must be a finite number"),
    (("generate", "runs/l", "--interpolate", "w1 w2", "w3", "--steps", "100000000000000000000"), 2,
     "--steps 100000000000000000000: must be in [2, 10000]"),
    (("generate", "runs/l", "--sample", "2", "--seed", "-1"), 2, "--seed -1: must be in [0, 4294967295]"),
    (("generate", "runs/l", "--sample", "2", "--device", "cuda:99"), 2, "--device cuda:99: "),
    (("visualize", "runs/l", "--kind", "samples", "--seed", "-1"), 2, "--seed -1: must be in"),
    (("visualize", "runs/l", "--kind", "latent", "--seed", "-1"), 2, "--seed -1: must be in"),
    (("classify", "runs/l", "--seed", "-1"), 2, "--seed -1: must be in [0, 4294967295]"),
    (("classify", "runs/l", "--repeats", "99999999999999999999"), 2, "--repeats 99999999999999999999: must be in"),
    (("classify", "runs/l", "--device", "cuda:99"), 2, "--device cuda:99: "),
    (("evaluate", "runs/l", "--seed", "100000000000000000000"), 2, "--seed 100000000000000000000: must be in"),
    (("evaluate", "runs/l", "--iw-samples", "1e20"), 2, "'--iw-samples'"),
    (("evaluate", "runs/l", "--iw-samples", "100000000000000000000"), 2, "--iw-samples 100000000000000000000: must"),
    (("evaluate", "runs/l", "--iw-samples", "100000", "--memory-budget", "1KB"), 2, "--iw-samples 100000: the "),
    (("evaluate", "runs/l", "--device", "cuda:99"), 2, "--device cuda:99: "),
    (("train", "--resume", "runs/l", "--epochs", "99999999999999999999"), 2, "--epochs 99999999999999999999: must"),
    (("prepare", "text", "--train", "lab.txt", "--as", "s", "--split", "nan,0.5,0.5"), 2, "--split 'nan,0.5,0.5'"),
    (("prepare", "text", "--train", "lab.txt", "--as", "s", "--seed", "4294967296"), 2, "--seed 4294967296: must"),
]


@pytest.mark.parametrize("args, code, needle", BAD_VALUES, ids=lambda v: " ".join(v) if isinstance(v, tuple) else None)
def test_bad_values_are_one_line_naming_the_option_and_write_nothing(ws28, monkeypatch, capsys, args, code, needle):
    monkeypatch.chdir(ws28)
    if args[0] == "train" and "--resume" not in args:
        args = (*TRAIN, "--dataset", "lab", *args[1:], "--run-dir", "runs/new")
    before = tree(ws28 / "runs") | tree(ws28 / "data")
    got, err = one_line(capsys, *args)
    assert got == code and len(err) == 1 and needle in err[0], err
    assert tree(ws28 / "runs") | tree(ws28 / "data") == before


# A full disk: ENOSPC injected where a real disk reports it (the final write and its fsync), and, where
# user and mount namespaces are allowed (`unshare -rm`, no root needed), on a real tiny tmpfs.

def _enospc(*_args):
    import errno

    raise OSError(errno.ENOSPC, "No space left on device")


def test_full_disk_in_prepare_and_evaluate_names_the_file_and_keeps_what_was_there(ws28, monkeypatch, capsys):
    import duvae_cli.io as io_module

    monkeypatch.chdir(ws28)
    monkeypatch.setattr(io_module.os, "fsync", _enospc)
    code, err = one_line(capsys, "prepare", "text", "--train", "lab.txt", "--as", "full", "--quiet")
    assert code == 1 and err == [f"duvae: error: {Path('data/full/dataset.h5')}: cannot write (No space left on "
                                 "device); nothing was written"], err
    assert not (ws28 / "data" / "full").exists()

    before = tree(ws28 / "data")
    code, err = one_line(capsys, "prepare", "text", "--train", "lab.txt", "--as", "lab", "--force", "--seed", 4,
                         "--quiet")
    assert code == 1 and len(err) == 1 and "dataset.h5: cannot write (No space left on device); the previous " \
        "file is intact" in err[0], err
    assert tree(ws28 / "data") == before  # no temp file either

    run = ws28 / "runs" / "l"
    before = tree(run)
    code, err = one_line(capsys, "evaluate", "runs/l", "--iw-samples", 2, "--quiet")
    assert code == 1 and len(err) == 1 and f"{run / 'metrics.h5'}: cannot write (No space left on device)" in err[0]
    kept = {k: v for k, v in tree(run).items() if not k.startswith((".", "metrics.partial/"))}
    assert kept == before  # beside lock files, only the scored examples are kept, for the next try:
    monkeypatch.undo()
    monkeypatch.chdir(ws28)
    assert cli("evaluate", "runs/l", "--iw-samples", 2, "--quiet") == 0 and not (run / "metrics.partial").exists()


def _namespaces() -> bool:
    import shutil

    return shutil.which("unshare") is not None and \
        subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode == 0


NAMESPACES = pytest.mark.skipif(not _namespaces(), reason="needs `unshare -rm` for a tiny tmpfs or a read-only mount")


def in_namespace(cwd: Path, script: str) -> subprocess.CompletedProcess:
    """`sh -c script` in a private mount namespace (mounts vanish with it); $DUVAE runs the CLI."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parent),
           "DUVAE": f"{sys.executable} -m duvae_cli"}
    return subprocess.run(["unshare", "-rm", "sh", "-c", script], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


@NAMESPACES
def test_full_tmpfs_during_prepare_is_one_line_and_leaves_no_temp_file(tmp_path):
    """Formerly: HDF5 failed its own write, left a half-closed file and the interpreter segfaulted at
    exit (139), with 66 traceback lines and .dataset.h5.*.tmp left (here: full at the first chunk)."""
    corpus = tmp_path / "big.txt"
    rng = random.Random(1)
    corpus.write_text("".join(" ".join(f"w{rng.randrange(3000)}" for _ in range(rng.randint(3, 12))) + "\n"
                              for _ in range(20000)))
    (tmp_path / "disk").mkdir()
    for size in ("8k",):
        done = in_namespace(tmp_path, f"mount -t tmpfs -o size={size} tmpfs disk || exit 97; "
                            "$DUVAE prepare text --train big.txt --as big --out disk/data --quiet; echo $? > code; "
                            "find disk -mindepth 1 > left")
        assert done.returncode == 0, done.stderr
        err = done.stderr.strip().splitlines()
        assert (tmp_path / "code").read_text().strip() == "1", err
        assert err == ["duvae: error: disk/data/big/dataset.h5: cannot write (No space left on device); nothing "
                       "was written"], err
        assert (tmp_path / "left").read_text() == ""  # no temp file, no empty folder


@NAMESPACES
def test_full_tmpfs_during_evaluate_names_the_file(ws28, tmp_path):
    """The run on a tmpfs with 0 or 24 KB left: the partial results or metrics.h5 is the write that
    fails; each time one line naming that file, exit 1, no temp file."""
    (tmp_path / "disk").mkdir()
    script = ("mount -t tmpfs -o size=1m tmpfs disk || exit 97; cd disk; "
              f"cp -r {ws28 / 'data'} {ws28 / 'runs'} . && rm -f runs/l/metrics.* runs/l/probe.csv; "
              "free=$(df -k . | tail -1 | awk '{print $4}'); "
              "dd if=/dev/zero of=fill bs=1k count=$((free - LEFT)) 2>/dev/null; "
              "$DUVAE evaluate runs/l --iw-samples 2 --quiet; echo $? > ../code; find runs/l -name '*tmp*' > ../left")
    for left in (0, 24):
        done = in_namespace(tmp_path, script.replace("LEFT", str(left)))
        err = done.stderr.strip().splitlines()
        assert done.returncode == 0 and (tmp_path / "code").read_text().strip() == "1", err
        assert len(err) == 1 and "/runs/l/" in err[0] and "No space left on device" in err[0], err
        assert (tmp_path / "left").read_text() == ""


def _moved_copy(ws28: Path, run: str, target: Path) -> Path:
    """A copy of runs/RUN under TARGET/runs whose recorded dataset path is gone (another machine)."""
    import json
    import shutil

    shutil.copytree(ws28 / "runs" / run, target / "runs" / run)
    manifest = target / "runs" / run / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "data_path": "/gone/data/lab/dataset.h5"}))
    return target / "runs" / run


def test_a_moved_run_uses_the_same_data_under_data_root_and_refuses_other_data(ws28, tmp_path, monkeypatch, capsys):
    import shutil

    _moved_copy(ws28, "l", tmp_path)
    monkeypatch.chdir(tmp_path)
    code, err = one_line(capsys, "evaluate", "runs/l", "--iw-samples", 2, "--quiet")
    assert code == 1 and len(err) == 1, err
    assert "its dataset /gone/data/lab/dataset.h5 is gone" in err[0] and \
        f"{Path('data/lab/dataset.h5')} (absent)" in err[0] and "--data-root DIR" in err[0], err

    from duvae_cli.data import load_dataset

    (tmp_path / "vocab.txt").write_text("\n".join(load_dataset(ws28 / "data" / "lab" / "dataset.h5").vocab) + "\n")
    assert cli("prepare", "text", "--train", ws28 / "lab.txt", "--as", "lab", "--vocab", "vocab.txt", "--seed", 5,
               "--quiet") == 0  # a dataset of that name and vocabulary, but other splits
    code, err = one_line(capsys, "evaluate", "runs/l", "--iw-samples", 2, "--quiet")
    assert code == 1 and len(err) == 1 and "data/lab/dataset.h5 (splits test, train, valid differ)" in err[0], err

    shutil.copytree(ws28 / "data" / "lab", tmp_path / "elsewhere" / "lab")  # the same data
    encode = ("encode", "runs/l", ws28 / "lab.txt", "--out", tmp_path / "c.npy")
    for args in (("evaluate", "runs/l", "--iw-samples", 2), ("classify", "runs/l"), ("generate", "runs/l", "--sample", 1),
                 encode):
        code, err = one_line(capsys, *args, "--data-root", "elsewhere", "--quiet")
        text_notes = err[1:] if args is encode else []  # what encode read: a note on its unknown words
        assert code == 0 and err == [f"data: using {Path('elsewhere/lab/dataset.h5')} (same fingerprint as "
                                     "recorded)", *text_notes], (args, err)
        assert all(line.startswith(f"{ws28 / 'lab.txt'}: ") for line in text_notes) and len(text_notes) <= 2
    shutil.rmtree(tmp_path / "data")
    shutil.move(tmp_path / "elsewhere", tmp_path / "data")  # ./data is searched without --data-root
    code, err = one_line(capsys, "evaluate", "runs/l", "--iw-samples", 2, "--quiet")
    assert code == 0 and err == [f"data: using {Path('data/lab/dataset.h5')} (same fingerprint as recorded)"], err


def test_a_moved_run_resumes_with_the_same_data_under_data(ws28, tmp_path, monkeypatch, capsys):
    """runs/abs was trained with an absolute data_root (src/); moved, that root is gone."""
    import shutil

    _moved_copy(ws28, "abs", tmp_path)
    (tmp_path / "data").mkdir()
    shutil.move(ws28 / "src" / "lab", tmp_path / "held")  # the old root is gone (runs/abs is this test's alone)
    monkeypatch.chdir(tmp_path)
    code, err = one_line(capsys, "train", "--resume", "runs/abs", "--epochs", 2, "--quiet")
    assert code == 1 and len(err) == 1 and "put the same dataset at data/lab/dataset.h5" in err[0], err
    shutil.move(tmp_path / "held", tmp_path / "data" / "lab")
    code, err = one_line(capsys, "train", "--resume", "runs/abs", "--epochs", 2, "--quiet")
    assert code == 0 and err == [f"data: using {Path('data/lab/dataset.h5')} (same fingerprint as recorded)"], err


def test_evaluate_and_classify_out_write_there_with_the_lock_there(ws28, tmp_path, monkeypatch):
    monkeypatch.chdir(ws28)
    run, out = ws28 / "runs" / "l", tmp_path / "out"
    before = tree(run)
    child = Stalled(ws28, "evaluate-batch", 1, "evaluate", "runs/l", "--iw-samples", 2, "--batch-size", 4,
                    "--out", out, "--quiet")
    try:
        assert [p.name for p in out.glob(".test-*.lock")] and not list(run.glob(".test-*.lock"))
        assert child.signal(signal.SIGINT)[0] == 130
    finally:
        child.kill()
    assert cli("evaluate", "runs/l", "--iw-samples", 2, "--batch-size", 4, "--out", out, "--quiet") == 0
    assert cli("classify", "runs/l", "--out", out, "--quiet") == 0
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == \
        ["metrics.csv", "metrics.h5", "probe.csv", "probes"]  # the saved probes too (probe/saved.py)
    assert tree(run) == before  # the run directory is only read


@NAMESPACES
def test_a_run_on_a_read_only_file_system_is_evaluated_with_out(ws28, tmp_path):
    (tmp_path / "ro").mkdir()
    script = (f"mount --bind -o ro {ws28 / 'runs'} ro || exit 97; cd {ws28}; "
              f"$DUVAE evaluate {tmp_path}/ro/l --iw-samples 2 --quiet; echo $? > {tmp_path}/plain; "
              f"$DUVAE evaluate {tmp_path}/ro/l --iw-samples 2 --quiet --out {tmp_path}/out > /dev/null; "
              f"echo $? > {tmp_path}/out.code")
    before = tree(ws28 / "runs" / "l")
    done = in_namespace(tmp_path, script)
    err = done.stderr.strip().splitlines()
    assert done.returncode == 0 and (tmp_path / "plain").read_text().strip() == "2", err
    assert (tmp_path / "out.code").read_text().strip() == "0"
    assert err == [f"duvae: error: {tmp_path}/ro/l: cannot write the results into the run (Read-only file system); "
                   "write them elsewhere with --out DIR"], err
    assert (tmp_path / "out" / "metrics.csv").exists() and tree(ws28 / "runs" / "l") == before


@pytest.mark.parametrize("content", ["", "{}", '{"format": {}, "splits": {}}'])
def test_an_emptied_binding_json_is_one_line_naming_it(ws28, tmp_path, monkeypatch, capsys, content):
    import shutil

    monkeypatch.chdir(ws28)
    shutil.copytree(ws28 / "runs" / "l", tmp_path / "r")
    (tmp_path / "r" / "binding.json").write_text(content)
    for args in (("evaluate", tmp_path / "r", "--iw-samples", 2), ("classify", tmp_path / "r"),
                 ("train", "--resume", tmp_path / "r", "--epochs", 2)):
        code, err = one_line(capsys, *args, "--quiet")
        assert code == 1 and len(err) == 1 and f"{tmp_path / 'r' / 'binding.json'}: " in err[0] and \
            "run binding" in err[0], (args, err)


def _damage(path: Path, change) -> None:
    import h5py

    with h5py.File(path, "r+") as f:
        for name in ("train", "valid", "test"):
            array = f[name][change[0]][()]
            change[1](array)
            f[name][change[0]][...] = array


@pytest.mark.parametrize("change, needle", [
    (("tokens", lambda t: t.__setitem__(3, 999)), "split train: token id 999 is outside the vocabulary of 34"),
    (("tokens", lambda t: t.__setitem__(3, -5)), "split train: token id -5 is outside the vocabulary of 34"),
    (("offsets", lambda o: o.__setitem__(2, o[5] + 3)), "split train: offsets fall at sentence 2"),
    (("offsets", lambda o: o.__setitem__(-1, o[-1] + 100)), "split train: offsets run from 0 to "),
])
def test_out_of_range_token_ids_or_bad_offsets_are_one_line_naming_the_file(ws28, tmp_path, monkeypatch, capsys,
                                                                              change, needle):
    import shutil

    monkeypatch.chdir(ws28)
    data = tmp_path / "bad" / "lab" / "dataset.h5"
    shutil.copytree(ws28 / "data" / "lab", data.parent)
    _damage(data, change)
    code, err = one_line(capsys, *TRAIN, "--dataset", "lab", "--set", f"data_root={tmp_path / 'bad'}",
                         "--run-dir", tmp_path / "run")
    assert code == 1 and len(err) == 1 and f"{data}: damaged duvae dataset ({needle}" in err[0], err
    assert not (tmp_path / "run").exists()


def test_a_directory_where_dataset_h5_should_be_is_named_as_such(ws28, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "lab" / "dataset.h5").mkdir(parents=True)
    code, err = one_line(capsys, *TRAIN, "--dataset", "lab", "--run-dir", "run")
    assert code == 1 and err == [f"duvae: error: {Path('data/lab/dataset.h5')}: a directory, not a dataset file "
                                 "(remove it and run `duvae prepare NAME`)"], err
    code, err = one_line(capsys, "prepare", "text", "--train", ws28 / "lab.txt", "--as", "lab", "--force", "--quiet")
    assert code == 1 and len(err) == 1 and "a directory is where the dataset file should be" in err[0], err
    assert (tmp_path / "data" / "lab" / "dataset.h5").is_dir() and not list((tmp_path / "data" / "lab").glob(".*"))


def test_quiet_still_shows_that_numbers_are_of_new_data(ws28, monkeypatch, capsys):
    from duvae_cli.data import load_dataset

    monkeypatch.chdir(ws28)
    data = ws28 / "data" / "lab" / "dataset.h5"
    original = data.read_bytes()
    (ws28 / "same.txt").write_text("\n".join(load_dataset(data).vocab) + "\n")
    try:
        assert cli("prepare", "text", "--train", "lab.txt", "--as", "lab", "--force", "--vocab", "same.txt",
                   "--seed", 9, "--quiet") == 0  # same vocabulary, other splits
        for args in (("evaluate", "runs/l", "--iw-samples", 2), ("classify", "runs/l")):
            code, err = one_line(capsys, *args, "--quiet")
            assert code == 0 and len(err) == 3 and all("same vocabulary, numbers are of the new data" in line
                                                       for line in err), err  # test, train, valid changed
    finally:
        data.write_bytes(original)


def test_a_one_sentence_data_file_leaks_no_warning(ws28, monkeypatch, capsys):
    import warnings

    monkeypatch.chdir(ws28)
    (ws28 / "one.txt").write_text("w1 w2 w3\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, err = one_line(capsys, "evaluate", "runs/l", "--data", "one.txt", "--iw-samples", 2, "--quiet")
    assert code == 0 and [str(w.message) for w in caught] == []
    assert err == ["one.txt: 1 sentence, 3 tokens, 0 unknown (0.00%); 0 longer than the longest training sentence "
                   "(8 tokens; longest here 3)"]  # the input's note, which --quiet keeps


def test_any_file_error_is_one_line_naming_the_file(monkeypatch, capsys):
    """The last net (cli.main): an OSError with a file name that no library code wrapped."""
    from duvae_cli.prepare import prepare

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", "/srv/data/x/dataset.h5")

    monkeypatch.setattr(prepare, "prepare_dataset", denied)
    code, err = one_line(capsys, "prepare", "synthetic")
    assert code == 1 and err == ["duvae: error: /srv/data/x/dataset.h5: Permission denied"], err


def test_a_model_too_large_for_memory_is_one_line_naming_the_sizes(ws28, monkeypatch, capsys):
    from duvae_cli.models import text

    def no_memory(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")

    monkeypatch.chdir(ws28)
    monkeypatch.setattr(text.LSTMEncoder, "__init__", no_memory)
    code, err = one_line(capsys, *TRAIN, "--dataset", "lab", "--set", "hidden_dim=16384", "--run-dir", "runs/big")
    assert code == 1 and len(err) == 1 and "the model does not fit in memory (embed_dim 8, hidden_dim 16384" in err[0]
    assert not (ws28 / "runs" / "big").exists()
