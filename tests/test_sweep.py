"""`duvae sweep`: the grid, a 2x2 sweep run by 2 workers (4 runs, report, grid figure), skipped on a
second call, an interrupted point resumed, and the SLURM path through submitit's local executor."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from interrupting import Interrupt, StopAfter
from toyruns import make_toy_data, toy_sets

from duvae_cli.errors import UsageError
from duvae_cli.sweep.grid import expand, parse_grid, parse_seeds, point_name
from duvae_cli.sweep.slurm import parse_time

REPO = Path(__file__).resolve().parents[1]


def test_grid_values_are_typed_like_the_config_fields_and_crossed_with_seeds():
    grid = parse_grid(["gamma=0.4,0.5", "p=1,0.8", "latent_dim=2", "model=du,bn"])
    assert grid == {"gamma": [0.4, 0.5], "p": [1.0, 0.8], "latent_dim": [2], "model": ["du", "bn"]}
    points = expand({"gamma": [0.4, 0.5], "p": [1.0, 0.8]}, parse_seeds("1,2"))
    assert len(points) == 8 and points[0] == {"gamma": 0.4, "p": 1.0, "seed": 1}
    assert points[1]["seed"] == 2 and points[2]["p"] == 0.8  # seeds vary fastest
    assert point_name(points[0]) == "gamma=0.4_p=1_seed=1"


@pytest.mark.parametrize("items,message", [
    (["gamma"], "expected key=v1,v2"), (["nope=1"], "key one of"), (["p=1,x"], "expected a number"),
    (["p=1", "p=2"], "given twice"), (["p=1,1.0"], "repeated"), (["seed=1,2"], "--seeds"),
])
def test_bad_grids_name_the_option(items, message):
    with pytest.raises(UsageError, match=message):
        parse_grid(items)


def test_slurm_time_in_minutes():
    assert [parse_time(t) for t in ("90", "1:30", "1:30:00", "1-00:00", "0:00:10")] == [90, 90, 90, 1440, 1]
    with pytest.raises(UsageError, match="--slurm-time"):
        parse_time("soon")


def _sweep(root: Path, data_root: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-m", "duvae_cli", "sweep", "--dataset", "toy", "--epochs", "1",
            *toy_sets(data_root), "--root", str(root), "--json", "--quiet", *extra]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600, cwd=root.parent)


def _statuses(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stderr
    return {p["name"]: p["status"] for p in json.loads(proc.stdout)["points"]}


def test_a_2x2_sweep_runs_resumes_and_skips(tmp_path):
    data_root, root = make_toy_data(tmp_path / "data"), tmp_path / "sweep"
    grid = ["--grid", "gamma=0.5,0.7", "--grid", "p=1,0.8", "--set", "checkpoint_every=1"]
    interrupted = _interrupt_one_point(root, data_root, grid)
    first = _sweep(root, data_root, *grid, "--workers", "2", "--then", "evaluate --iw-samples 2 --device cpu")
    names = ["gamma=0.5_p=1", "gamma=0.5_p=0.8", "gamma=0.7_p=1", "gamma=0.7_p=0.8"]
    assert _statuses(first) == {n: ("resume" if n == interrupted else "new") for n in names}
    payload = json.loads(first.stdout)
    assert Path(payload["figure"]) == root / "figures" / "grid-mi.png" and Path(payload["figure"]).stat().st_size
    assert payload["report"].count("| toy |") == 4  # one row per (gamma, p)
    for name in names:
        history = list(csv.DictReader((root / name / "history.csv").open()))
        assert [int(r["step"]) for r in history] == [3]  # one epoch of 3 steps, the resumed one too
        assert (root / name / "metrics.csv").is_file()
    stamps = {n: json.loads((root / n / "manifest.json").read_text())["finished_utc"] for n in names}
    second = _sweep(root, data_root, *grid, "--workers", "2", "--then", "evaluate --iw-samples 2 --device cpu")
    assert set(_statuses(second).values()) == {"skipped"}
    assert stamps == {n: json.loads((root / n / "manifest.json").read_text())["finished_utc"] for n in names}
    assert json.loads(second.stdout)["report"] == payload["report"]


def _interrupt_one_point(root: Path, data_root: Path, grid: list[str]) -> str:
    """Start the first point's run in-process and stop it after step 2 (last.pt is from step 2)."""
    from duvae_cli.sweep import SweepOptions, plan
    from duvae_cli.sweep.grid import parse_grid as grid_of
    from duvae_cli.train.config import TrainConfig
    from duvae_cli.train.session import start_run

    sets = tuple(s for s in [*toy_sets(data_root), *grid[4:]] if s != "--set")
    options = SweepOptions(grid=grid_of([grid[1], grid[3]]), root=root, sets=sets,
                           flags=dict(dataset="toy", epochs=1))
    spec = plan(options)[0]
    with pytest.raises(Interrupt):
        start_run(TrainConfig(**spec.config), run_dir=Path(spec.run_dir), reporter=StopAfter(3))
    return spec.name


def test_the_slurm_path_through_submitits_local_executor(tmp_path):
    pytest.importorskip("submitit")
    data_root, root = make_toy_data(tmp_path / "data"), tmp_path / "sweep"
    env_cluster = {"DUVAE_SUBMITIT_CLUSTER": "local"}
    proc = subprocess.run(
        [sys.executable, "-m", "duvae_cli", "sweep", "--dataset", "toy", "--epochs", "1", *toy_sets(data_root),
         "--root", str(root), "--grid", "gamma=0.5", "--grid", "p=1,0.8", "--launcher", "slurm",
         "--workers", "2", "--slurm-time", "0:10:00", "--slurm-partition", "test", "--json", "--quiet"],
        capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1", **env_cluster}, timeout=600)
    assert set(_statuses(proc).values()) == {"new"}
    assert all((root / n / "history.csv").is_file() for n in ("gamma=0.5_p=1", "gamma=0.5_p=0.8"))
    assert list((root / "slurm").rglob("*_result.pkl"))  # submitit's own records of the array tasks
    assert json.loads(proc.stdout)["figure"]  # grid from history.csv (no evaluate)
