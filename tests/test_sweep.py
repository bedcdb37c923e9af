"""`duvae sweep`: the grid, a 2x2 sweep run by 2 workers (4 runs, report, grid figure), skipped on a
second call, an interrupted point resumed; a rerun for more epochs re-evaluates every point on its new
best checkpoint; `--then` steps re-run exactly when the checkpoint they read changed. SLURM:
tests/test_sweep_slurm.py; stopping a sweep: tests/test_sweep_stop.py."""

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
from duvae_cli.io import sha256_file
from duvae_cli.sweep.grid import expand, parse_grid, parse_seeds, point_name
from duvae_cli.sweep.points import PointSpec, point_steps
from duvae_cli.sweep.slurm import parse_time
from duvae_cli.sweep.then import checkpoint_of, checkpoint_sha

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


def _sweep(root: Path, data_root: Path, *extra: str, epochs: int = 1, quiet: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-m", "duvae_cli", "sweep", "--dataset", "toy", "--epochs", str(epochs),
            *toy_sets(data_root), "--root", str(root), "--json", *(["--quiet"] if quiet else []), *extra]
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
    """Start the first point's run in-process and stop it after step 2 (the last checkpoint is from step 2)."""
    from duvae_cli.sweep import SweepOptions, plan
    from duvae_cli.config.resolve import TrainConfig
    from duvae_cli.train.session import start_run

    sets = tuple(s for s in [*toy_sets(data_root), *grid[4:]] if s != "--set")
    options = SweepOptions(grid=(grid[1], grid[3]), root=root, sets=sets,
                           flags=dict(dataset="toy", epochs=1))
    spec = plan(options)[0]
    with pytest.raises(Interrupt):
        start_run(TrainConfig(**spec.config), run_dir=Path(spec.run_dir), reporter=StopAfter(3))
    return spec.name


def test_a_rerun_for_more_epochs_reevaluates_each_point_on_its_current_best_checkpoint(tmp_path):
    data_root, root = make_toy_data(tmp_path / "data"), tmp_path / "sweep"
    args = ["--grid", "gamma=0.5", "--grid", "p=1,0.8", "--workers", "2", "--then", "evaluate --iw-samples 2 --device cpu"]
    names = ["gamma=0.5_p=1", "gamma=0.5_p=0.8"]
    _statuses(_sweep(root, data_root, *args))
    before = {n: sha256_file(root / n / "checkpoints" / "best.safetensors") for n in names}
    second = _sweep(root, data_root, *args, epochs=2, quiet=False)
    assert {p["name"]: p["ran"] for p in json.loads(second.stdout)["points"]} == {n: ["train", "evaluate"] for n in names}
    assert "1 of 2 done: " in second.stderr and "2 of 2 done: " in second.stderr
    for name in names:
        best = sha256_file(root / name / "checkpoints" / "best.safetensors")
        assert best != before[name]  # epoch 2 improved: the point has a new best checkpoint
        rows = list(csv.DictReader((root / name / "metrics.csv").open()))
        assert rows and {(r["checkpoint"], r["checkpoint_sha256"]) for r in rows} == {("best", best)}
        moved = list(csv.DictReader((root / name / "superseded" / "metrics.csv").open()))
        assert len(moved) == len(rows) and {r["checkpoint_sha256"] for r in moved} == {before[name]}
        record = json.loads((root / name / "sweep-then.json").read_text())["then"]
        assert record["evaluate --iw-samples 2 --device cpu"]["sha256"] == best
    every = sorted(str(p) for p in root.iterdir())  # the shell's ROOT/*: points, figures/, logs/, ...
    strict = subprocess.run([sys.executable, "-m", "duvae_cli", "report", *every, "--strict", "--format", "csv"],
                            capture_output=True, text=True)
    assert strict.returncode == 0, strict.stderr  # no number of the sweep is stale
    assert strict.stdout.count("\n") == 1 + 2 and "stale" in strict.stdout.splitlines()[0]


def _point(tmp_path: Path, thens: tuple[str, ...]) -> PointSpec:
    """A finished point (as point_status reads it), with made-up checkpoint files, for the then-steps."""
    run_dir = tmp_path / "point"
    (run_dir / "checkpoints").mkdir(parents=True)
    config = {"epochs": 1, "model": "du"}
    (run_dir / "config.json").write_text(json.dumps(config))
    (run_dir / "manifest.json").write_text(json.dumps({"finished_utc": "2026-01-01T00:00:00Z"}))
    for name in ("best", "last"):
        (run_dir / "checkpoints" / f"{name}.safetensors").write_bytes(f"{name} 1".encode())
    return PointSpec("point", str(run_dir), "", config, thens=thens, log_path=str(tmp_path / "point.log"))


def _drive(spec: PointSpec, codes: dict | None = None, rows=None) -> dict:
    """Run point_steps as a worker would, each command "exiting" with codes[command] (default 0); an
    evaluate appends `rows(sha)` to metrics.csv as evaluate would."""
    from duvae_cli.metrics.store import update_metrics_csv

    steps, code = point_steps(spec), None
    while True:
        try:
            argv = next(steps) if code is None else steps.send(code)
        except StopIteration as end:
            return end.value
        code = (codes or {}).get(argv[0], 0)
        if argv[0] == "evaluate" and rows and code == 0:
            update_metrics_csv(Path(spec.run_dir) / "metrics.csv", rows(checkpoint_sha(Path(spec.run_dir), "best")))


def test_then_steps_rerun_exactly_when_the_checkpoint_they_read_changed(tmp_path):
    spec = _point(tmp_path, ("evaluate --iw-samples 2", "classify --checkpoint last"))
    run_dir = Path(spec.run_dir)
    rows = lambda sha: [{"run": "point", "split": "test", "metric": "mi", "value": "0.1", "estimator": "mc",
                         "n_samples": "2", "seed": "1", "checkpoint": "best", "checkpoint_sha256": sha}]
    (run_dir / "sweep-then.json").write_text(json.dumps({"then_done": ["evaluate --iw-samples 2"]}))
    assert _drive(spec, rows=rows)["ran"] == ["evaluate", "classify"]  # the old record has no checkpoint: ran again
    assert _drive(spec, rows=rows)["ran"] == []
    first = checkpoint_sha(run_dir, "best")
    (run_dir / "checkpoints" / "best.safetensors").write_bytes(b"best 2")  # e.g. trained on for more epochs
    result = _drive(spec, rows=rows)
    assert result == {"name": "point", "status": "skipped", "error": None, "ran": ["evaluate"]}
    table = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert [r["checkpoint_sha256"] for r in table] == [checkpoint_sha(run_dir, "best")]
    assert [r["checkpoint_sha256"] for r in csv.DictReader((run_dir / "superseded" / "metrics.csv").open())] == [first]

    (run_dir / "checkpoints" / "last.safetensors").write_bytes(b"last 2")
    failed = _drive(spec, codes={"classify": 1})
    assert failed["status"] == "failed" and failed["error"].endswith(f"see {spec.log_path}")
    assert failed["error"].startswith("`duvae classify` exited 1")
    assert _drive(spec)["ran"] == ["classify"]  # a failed step is not recorded: it runs again


def test_checkpoint_of_a_then_step():
    assert checkpoint_of(["evaluate", "RUN"]) == "best"
    assert checkpoint_of(["evaluate", "--checkpoint", "last", "RUN"]) == "last"
    assert checkpoint_of(["classify", "--checkpoint=last", "RUN"]) == "last"
