"""`duvae sweep --launcher slurm`: refused in one line without sbatch, `--dry-run` prints the job script
and writes nothing, and a submission through stand-in sbatch/squeue/sacct (tests/fakeslurm.py) sends
the #SBATCH lines, array size, parallelism and per-task command asked for, and runs every point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import fakeslurm
from toyruns import make_toy_data, toy_sets

from duvae_cli.errors import UsageError
from duvae_cli.sweep.slurm import SlurmOptions, check_options

SLURM_OPTIONS = ["--launcher", "slurm", "--workers", "2", "--slurm-time", "0:10:00", "--slurm-partition", "test",
                 "--slurm-cpus", "2", "--slurm-mem", "1G", "--slurm-account", "lab", "--slurm-qos", "short",
                 "--slurm-constraint", "avx512&bf16", "--slurm-setup", "echo setup-one",
                 "--slurm-setup", "echo setup-two"]


def _sweep(tmp_path: Path, path: str, *extra: str) -> subprocess.CompletedProcess:
    data_root = make_toy_data(tmp_path / "data") if not (tmp_path / "data").exists() else tmp_path / "data"
    argv = [sys.executable, "-m", "duvae_cli", "sweep", "--dataset", "toy", "--epochs", "1", *toy_sets(data_root),
            "--root", str(tmp_path / "sweep"), "--grid", "gamma=0.5", "--grid", "p=1,0.8", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PATH": path}
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)


def test_without_sbatch_slurm_is_refused_in_one_line_and_dry_run_prints_the_script(tmp_path):
    empty = tmp_path / "bin"  # a PATH without sbatch
    empty.mkdir()
    refused = _sweep(tmp_path, str(empty), *SLURM_OPTIONS)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [refused.stderr.strip()] and "sbatch" in refused.stderr
    assert not (tmp_path / "sweep").exists()

    dry = _sweep(tmp_path, str(empty), *SLURM_OPTIONS, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    options = fakeslurm.sbatch_options(dry.stdout)
    assert options["array"] == "0-1%2" and options["time"] == "10" and options["mem"] == "1G"
    assert (options["account"], options["qos"], options["constraint"], options["cpus-per-task"]) == \
        ("lab", "short", "avx512&bf16", "2")
    assert "echo setup-one\necho setup-two\n" in dry.stdout
    assert dry.stdout.rstrip().endswith('"$SLURM_ARRAY_TASK_ID"') and " sweep-task " in dry.stdout
    assert not (tmp_path / "sweep").exists()  # a dry run writes nothing


@pytest.mark.parametrize("field,value,flag", [
    ("mem", "lots", "--slurm-mem"), ("account", "a b", "--slurm-account"), ("qos", "q\n#SBATCH", "--slurm-qos"),
    ("setup", ("echo a\necho b",), "--slurm-setup"), ("cpus", 0, "--slurm-cpus"),
])
def test_a_value_that_does_not_fit_one_script_line_names_its_option(field, value, flag):
    with pytest.raises(UsageError, match=flag):
        check_options(SlurmOptions(**{field: value}))


def test_the_job_array_sent_to_slurm_runs_every_point(tmp_path):
    bin_dir, state = tmp_path / "bin", tmp_path / "slurm-state"
    fakeslurm.install(bin_dir, state)
    proc = _sweep(tmp_path, f"{bin_dir}{os.pathsep}{os.environ['PATH']}", *SLURM_OPTIONS, "--json")
    assert proc.returncode == 0, proc.stderr
    root = tmp_path / "sweep"
    points = json.loads(proc.stdout)["points"]
    assert {p["name"]: p["status"] for p in points} == {"gamma=0.5_p=1": "new", "gamma=0.5_p=0.8": "new"}
    assert "1 of 2 done" in proc.stderr and "2 of 2 done" in proc.stderr

    sent = fakeslurm.calls(state)
    script = root / "slurm" / "sweep.sbatch"
    assert sent[0] == ["sbatch", "--parsable", str(script)]
    assert [c[0] for c in sent].count("sbatch") == 1 and ["squeue", "--noheader", "--format=%i",
                                                         f"--jobs={fakeslurm.JOB}"] in sent
    submitted = (state / "submitted.sbatch").read_text()
    assert submitted == script.read_text()
    options = fakeslurm.sbatch_options(submitted)
    assert options["array"] == "0-1%2" and options["partition"] == "test" and "gres" not in options
    assert 1 <= fakeslurm._state(state)["peak"] <= 2
    tasks = json.loads((root / "slurm" / "tasks.json").read_text())["points"]
    assert [t["name"] for t in tasks] == ["gamma=0.5_p=1", "gamma=0.5_p=0.8"]
    assert {t["env"]["OMP_NUM_THREADS"] for t in tasks} == {"2"}  # = --slurm-cpus
    for task, name in enumerate(["gamma=0.5_p=1", "gamma=0.5_p=0.8"]):
        assert (root / name / "history.csv").is_file()
        out = (root / "slurm" / f"{fakeslurm.JOB}_{task}.out").read_text()
        assert out.startswith("setup-one\nsetup-two\n")  # the setup lines ran first, in order
    assert not [p for p in root.rglob("*") if "%" in p.name]  # no literal %j / %A folders

    again = _sweep(tmp_path, f"{bin_dir}{os.pathsep}{os.environ['PATH']}", *SLURM_OPTIONS, "--json")
    assert again.returncode == 0, again.stderr
    assert {p["status"] for p in json.loads(again.stdout)["points"]} == {"skipped"}
    assert [c[0] for c in fakeslurm.calls(state)].count("sbatch") == 1  # nothing left to submit


def test_a_sweep_whose_previous_job_still_runs_refuses_to_submit_again(tmp_path, monkeypatch):
    from duvae_cli.errors import DuvaeError
    from duvae_cli.sweep.slurm import _refuse_if_running

    bin_dir, state = tmp_path / "bin", tmp_path / "slurm-state"
    fakeslurm.install(bin_dir, state)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    folder = tmp_path / "sweep" / "slurm"
    folder.mkdir(parents=True)
    (folder / "job.json").write_text(json.dumps({"job": fakeslurm.JOB, "points": ["a", "b"]}))
    fakeslurm._state(state, pending=[1], running=[0], done={}, peak=1)  # task 0 runs, task 1 waits
    with pytest.raises(DuvaeError, match=f"SLURM job {fakeslurm.JOB} of this sweep still runs.*scancel {fakeslurm.JOB}"):
        _refuse_if_running(folder)
    fakeslurm._state(state, pending=[], running=[], done={"0": 0, "1": 0})
    _refuse_if_running(folder)  # ended: a new submission may go


def test_a_task_that_ends_without_a_result_is_named_with_its_sacct_state_and_output(tmp_path):
    bin_dir, state = tmp_path / "bin", tmp_path / "slurm-state"
    fakeslurm.install(bin_dir, state)
    proc = _sweep(tmp_path, f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "--launcher", "slurm", "--workers", "2",
                  "--slurm-setup", "exit 3")  # every task dies in its setup, before its point starts
    assert proc.returncode == 1
    out = tmp_path / "sweep" / "slurm" / f"{fakeslurm.JOB}_0.out"
    assert f"SLURM task {fakeslurm.JOB}_0 ended FAILED (exit 3:0) without a result; see {out}" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("duvae: error: 2 of 2 points failed: ")
    assert ["sacct", "--noheader", "--parsable2", "--allocations", "--format=JobID,State,ExitCode",
            f"--jobs={fakeslurm.JOB}"] in fakeslurm.calls(state)
