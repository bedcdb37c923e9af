"""Long outputs and progress (issue 32): `generate --reconstruct` and `encode` stream their rows, a
closed stdout (`| head`) ends a command quietly with exit 0, `--limit`, and progress lines with a
rate and the time left when stderr is not a terminal."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import numpy as np
import pytest

from test_probe_toyrun import toy_run  # noqa: F401  (fixture)
from toyruns import make_toy_data, toy_sets
from duvae_cli import console
from duvae_cli.errors import OutputClosed


def big_file(path, n: int = 20_000):
    rng = np.random.default_rng(0)
    path.write_text("".join(" ".join(f"w{k}" for k in rng.integers(0, 24, rng.integers(3, 9))) + "\n"
                            for _ in range(n)), encoding="utf-8")
    return path


def test_generate_reconstruct_of_20000_lines_into_head_3_ends_at_once_with_exit_0(toy_run, tmp_path):  # noqa: F811
    """The issue's check: `duvae generate RUN --reconstruct big.txt | head -3`."""
    path = big_file(tmp_path / "big.txt")
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "duvae_cli", "generate", str(toy_run), "--reconstruct", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = [proc.stdout.readline() for _ in range(3)]  # what `head -3` reads before it closes the pipe
    proc.stdout.close()
    code, seconds = proc.wait(timeout=60), time.monotonic() - started
    err = proc.stderr.read()
    assert code == 0 and "Error" not in err and "Traceback" not in err, err
    assert lines[0].startswith("[line 1] input:  ") and lines[2].startswith("[line 2] input:  ")
    assert seconds < 30, seconds  # all of it would take minutes: it ended at the first closed write
    assert "20,000 sentences" in err  # the input's note, before any row


class ClosedAfter:
    """A stdout whose reader goes away after `n` writes (what `| head` does)."""

    def __init__(self, n: int):
        self.n, self.written = n, []

    def write(self, text):
        if len(self.written) >= self.n:
            raise BrokenPipeError(32, "Broken pipe")
        self.written.append(text)

    def flush(self):
        pass


def test_encode_to_a_closed_stdout_exits_0_after_the_first_chunk(toy_run, tmp_path, monkeypatch, capsys):  # noqa: F811
    from duvae_cli.cli import main
    from duvae_cli.use import encode

    path = big_file(tmp_path / "big.txt", 3000)
    out = ClosedAfter(1)
    monkeypatch.setattr(sys, "stdout", out)
    calls = []
    real = encode.encode_split
    monkeypatch.setattr(encode, "encode_split", lambda *a, **k: calls.append(1) or real(*a, **k))
    with pytest.raises(SystemExit) as exit_info:
        main(["encode", str(toy_run), str(path), "--quiet"])
    assert exit_info.value.code == 0
    first = out.written[0].splitlines()
    assert len(first) == encode.STREAM_CHUNK and json.loads(first[0])["line"] == 1  # streamed by chunk
    assert len(calls) == 2  # the second chunk's write failed: the third was never encoded


def test_generate_limit_reconstructs_the_first_n_with_progress_on_stderr(toy_run, tmp_path, duvae):  # noqa: F811
    path = big_file(tmp_path / "big.txt", 500)
    result = duvae("generate", toy_run, "--reconstruct", path, "--limit", "7", "--json")
    assert result.code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["line"] for r in rows] == list(range(1, 8))
    assert re.search(r"reconstructing: 7/7 \(100%\), [\d.,]+/s", result.stderr), result.stderr
    assert "7 sentences" in result.stderr  # the note is of what was read: the first 7
    refused = duvae("generate", toy_run, "--sample", "2", "--limit", "3")
    assert refused.code == 2 and "--limit: only with --reconstruct FILE" in refused.stderr


def test_write_stdout_turns_a_broken_pipe_into_output_closed(monkeypatch):
    from duvae_cli.io import write_stdout

    monkeypatch.setattr(sys, "stdout", ClosedAfter(0))
    with pytest.raises(OutputClosed):
        write_stdout("x\n")


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_plain_progress_lines_give_rate_and_time_left_and_the_last_line_once(monkeypatch, capsys):
    clock = Clock()
    monkeypatch.setattr(console.time, "monotonic", clock)
    reporter = console.CliReporter()  # stderr captured: not a terminal
    with reporter.task("epoch 1/3", 400) as task:
        task.skip(100)  # done before a resume: shown, not in the rate
        for _ in range(30):  # 10 items per second
            clock.now += 1.0
            task.advance(10, **{"loss (EMA 0.95)": 3.5})
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "epoch 1/3: 110/400 (28%), 10/s, 1s elapsed, 29s left  loss (EMA 0.95) 3.5"
    assert lines[-1] == "epoch 1/3: 400/400 (100%), 10/s, 30s elapsed, done  loss (EMA 0.95) 3.5"
    assert len(lines) == len(set(lines)) == 4  # 28% (1 s), 50%, 75%, 100%; the final line is not repeated


def test_a_training_run_written_to_a_file_shows_rate_time_left_and_smoothed_loss(tmp_path, duvae, monkeypatch):
    monkeypatch.setattr(console, "MIN_GAP", 0.0)  # a line at every quarter of these sub-second epochs
    data = make_toy_data(tmp_path / "data")
    result = duvae("train", "--dataset", "toy", "--epochs", "2", *toy_sets(data), "--run-dir", tmp_path / "run")
    assert result.code == 0, result.stderr
    progress = [line for line in result.stderr.splitlines() if line.startswith("epoch 1/2: ")]
    assert progress and all(re.search(r", [\d.,]+/s, \d+s elapsed", line) for line in progress), progress
    assert any(re.search(r", \d+s left  loss \(EMA 0\.95\) [\d.]+  kl \(EMA 0\.95\) [\d.]+$", line)
               for line in progress), progress
    assert len(progress) == len(set(progress))


def test_evaluate_shows_no_running_number_that_reads_like_a_result(toy_run, tmp_path, duvae, monkeypatch):  # noqa: F811
    import shutil

    monkeypatch.setattr(console, "MIN_GAP", 0.0)
    run = tmp_path / "run"
    shutil.copytree(toy_run, run)
    result = duvae("evaluate", run, "--iw-samples", "3", "--batch-size", "16")
    assert result.code == 0, result.stderr
    progress = [line for line in result.stderr.splitlines() if line.startswith("IW-NLL (K=3): ")]
    assert len(progress) >= 2 and not any("iw_nll" in line for line in progress), progress


def test_sweep_tally_says_k_of_n_with_time_left_at_the_pace_of_points_run_here(monkeypatch):
    from duvae_cli.sweep.launch import Tally

    clock, lines = Clock(), []
    monkeypatch.setattr("duvae_cli.sweep.launch.time.monotonic", clock)

    class Log:
        def log(self, line):
            lines.append(line)

    tally = Tally(4, Log())
    tally.note({"name": "a", "status": "skipped"})
    clock.now = 600.0
    tally.note({"name": "b", "status": "trained"})
    assert lines == ["1 of 4 done: a skipped", "2 of 4 done: b trained; 10.0 min elapsed, about 20.0 min left"]
