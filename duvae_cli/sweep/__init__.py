"""`duvae sweep`: a grid of ordinary training runs, resumable, run by local workers or as a SLURM job
array, ending with the sweep's report table and its Figure-2 grid (docs/sweeps.md).

ROOT/                      (default runs/sweep-<dataset>-<model>)
    <point name>/          a run directory per point, e.g. gamma=0.4_p=1_seed=1/
    points/<name>.json     the point's resolved config (`duvae train --config` reads it)
    logs/<name>.log        the point's commands and their output
    slurm/                 the job script, tasks and task outputs (--launcher slurm; sweep/slurm.py)
    figures/grid-<metric>.png, report.md
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from duvae_cli.config.resolve import CONFIG_FILE, SETS, resolve_config
from duvae_cli.errors import DuvaeError, UsageError
from duvae_cli.interrupt import recorded
from duvae_cli.io import atomic_write_text
from duvae_cli.options import Option, options_dataclass
from duvae_cli.progress import SILENT, Reporter
from duvae_cli.sweep.grid import CHOSEN, expand, parse_grid, parse_seeds, point_name
from duvae_cli.sweep.launch import Tally, run_local
from duvae_cli.sweep.points import PointSpec, has_work, point_status, then_args
from duvae_cli.sweep.slurm import SlurmOptions, check_options, require_sbatch, run_slurm, sbatch_script
from duvae_cli.tracking import LOG, LOG_EVERY, check_trackers

LAUNCHERS = ("local", "slurm")


# What `duvae sweep` can be asked besides the training options (commands/sweep.py); the grid and
# the seeds are kept as given and read by `plan` (sweep/grid.py).
SWEEP_OPTIONS = (
    Option("grid", str, (), "key=v1,v2,... over any config field (repeatable, at least once; the points are the "
           "product), e.g. --grid gamma=0.4,0.5 --grid p=1,0.8.", multiple=True),
    Option("seeds", str, None, "Seeds crossed with the grid, e.g. 1,2,3 (default: the config's seed)."),
    Option("root", Path, None, "Sweep directory (default runs/sweep-<dataset>-<model>)."),
    CONFIG_FILE, SETS, LOG, LOG_EVERY,
    Option("thens", str, (), 'Run after training each point, e.g. "evaluate --iw-samples 500" (repeatable).',
           multiple=True, flags=("--then",)),
    Option("workers", int, 1, "Points run at once; the cores are split between them.", range=">= 1"),
    Option("launcher", str, "local", "local (worker processes) or slurm (one job array, sbatch).", choices=LAUNCHERS),
    Option("dry_run", bool, False, "slurm: print the job script; submit and write nothing.", flags=("--dry-run",)),
    Option("metric", str, "mi", "Metric of the gamma x p grid figure (mi, au, iw_nll, val_loss, ...)."),
)


@options_dataclass(SWEEP_OPTIONS)
class SweepOptions:
    """A sweep: SWEEP_OPTIONS, the training flags every point takes (None = unset, as `duvae train`
    takes them), the SLURM options, and the command that resumes the sweep (named in the one line
    of a stop)."""

    flags: dict = field(default_factory=dict)
    slurm: SlurmOptions = SlurmOptions()
    resume: str = ""

    def check(self) -> None:
        if self.dry_run and self.launcher != "slurm":
            raise UsageError("--dry-run: only with --launcher slurm (it prints the job script)")

    @property
    def trackers(self) -> tuple[str, ...]:
        """The trackers beyond csv (tracking.check_trackers: a missing package is refused here)."""
        return check_trackers(self.log, self.log_every)


@dataclass
class SweepResult:
    root: Path
    points: list[dict]  # {"name", "status", "error"} per point
    report: str | None  # markdown table (None: no point has metrics.csv/probe.csv yet)
    figure: Path | None  # the gamma x p grid (None: the grid is not over gamma and p)
    notes: list[str] = field(default_factory=list)
    script: str | None = None  # --dry-run: the SLURM job script that would be submitted

    @property
    def failed(self) -> list[dict]:
        return [p for p in self.points if p["status"] == "failed"]


def plan(options: SweepOptions) -> list[PointSpec]:
    """Resolve every point's config (presets < --config < --set < flags < grid values); nothing is
    written or trained here (`write_points` writes the configs)."""
    trackers = options.trackers
    args = tuple(then_args(t, trackers) for t in options.thens)
    values = expand(parse_grid(options.grid), parse_seeds(options.seeds))
    configs = [_point_config(options, point) for point in values]
    root = options.root or Path("runs") / f"sweep-{configs[0].dataset}-{configs[0].model}"
    env = _worker_env(options, root)
    train_args = tuple(a for kind in trackers for a in ("--log", kind))
    train_args += ("--log-every", str(options.log_every)) if options.log_every else ()
    specs = []
    for point, config in zip(values, configs):
        name = point_name(point)
        specs.append(PointSpec(name, str(root / name), str(root / "points" / f"{name}.json"), config.to_dict(),
                               train_args, tuple(map(_join, args)), env, str(root / "logs" / f"{name}.log")))
    return specs


def write_points(specs: list[PointSpec]) -> None:
    """ROOT/points/<name>.json (what `duvae train --config` reads) and the ROOT/logs folder."""
    for spec in specs:
        atomic_write_text(Path(spec.config_path), json.dumps(spec.config, indent=2, sort_keys=True) + "\n")
        Path(spec.log_path).parent.mkdir(parents=True, exist_ok=True)


def _point_config(options: SweepOptions, point: dict):
    flags = {**options.flags, **{k: v for k, v in point.items() if k in CHOSEN or k == "seed"}}
    sets = [*options.sets, *(f"{k}={v}" for k, v in point.items() if k not in CHOSEN and k != "seed")]
    try:
        return resolve_config(flags=flags, config_file=options.config_file, sets=sets)
    except UsageError as exc:
        raise UsageError(f"sweep point {point_name(point)}: {exc}") from None


def _join(args: list[str]) -> str:
    import shlex

    return shlex.join(args)


def _worker_env(options: SweepOptions, root: Path) -> dict:
    """Local: the cores split between the workers (unless OMP_NUM_THREADS is set already); SLURM:
    the CPUs each task asks for. The MLflow experiment is named after the sweep (unless
    MLFLOW_EXPERIMENT_NAME is set)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = os.environ.get("OMP_NUM_THREADS") or str(max(1, cores // options.workers))
    threads = str(options.slurm.cpus) if options.launcher == "slurm" else threads
    env = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    env["MLFLOW_EXPERIMENT_NAME"] = os.environ.get("MLFLOW_EXPERIMENT_NAME") or root.name
    return env


def run_sweep(options: SweepOptions, reporter: Reporter = SILENT) -> SweepResult:
    """Plan, check every point before anything runs, run the points (or, `dry_run`, only make the
    SLURM job script), then summarize. A stop by SIGINT/SIGTERM raises `Interrupted` (sweep/launch.py)."""
    specs = plan(options)
    root = Path(specs[0].run_dir).parent
    if options.launcher == "slurm":
        check_options(options.slurm)
        if not options.dry_run:
            require_sbatch()
    for spec in specs:  # a point made with another config is refused before anything runs
        point_status(Path(spec.run_dir), spec.config)
    if options.launcher == "slurm":
        return _sweep_on_slurm(specs, root, options, reporter)
    write_points(specs)
    reporter.log(f"sweep {root}: {len(specs)} points, {options.workers} at a time "
                 f"(local, OMP_NUM_THREADS={specs[0].env['OMP_NUM_THREADS']} each)")
    points = run_local(specs, options.workers, Tally(len(specs), reporter), options.resume)
    return summarize(root, specs, points, options.metric)


def _sweep_on_slurm(specs: list[PointSpec], root: Path, options: SweepOptions, reporter: Reporter) -> SweepResult:
    """The points with work left (training, or a `--then` step whose checkpoint changed) as one job
    array, waited for; the others are reported skipped. A dry run only makes the script."""
    todo = [s for s in specs if has_work(s)]
    if options.dry_run:
        script = sbatch_script(todo, root, options.workers, options.slurm) if todo else None
        notes = [] if todo else ["nothing to submit: every point is done"]
        return SweepResult(root, [], None, None, notes, script)
    write_points(specs)
    reporter.log(f"sweep {root}: {len(specs)} points, {len(todo)} to run, {options.workers} at a time "
                 f"(slurm, {options.slurm.cpus} CPUs each)")
    tally = Tally(len(specs), reporter)
    points = [tally.note({"name": s.name, "status": "skipped", "error": None, "ran": []})
              for s in specs if s not in todo]
    if todo:
        with recorded() as stop:
            points += run_slurm(todo, root, options.workers, options.slurm, tally, stop, options.resume)
    return summarize(root, specs, points, options.metric)


def summarize(root: Path, specs: list[PointSpec], points: list[dict], metric: str) -> SweepResult:
    """`duvae report` of the sweep's trained points and `visualize --kind grid` over gamma x p."""
    from duvae_cli.tables import build_report, format_table
    from duvae_cli.viz import VizOptions, visualize

    order = {s.name: i for i, s in enumerate(specs)}
    runs = [Path(s.run_dir) for s in specs if (Path(s.run_dir) / "history.csv").is_file()]
    result = SweepResult(root, sorted(points, key=lambda p: order[p["name"]]), None, None)
    if not runs:
        result.notes.append("no point finished an epoch: no report, no grid")
        return result
    try:
        result.report = format_table(build_report(runs), "markdown")
        atomic_write_text(root / "report.md", result.report)
    except DuvaeError as exc:
        result.notes.append(f"no report: {exc} (add --then evaluate)")
    configs = [s.config for s in specs]
    if all(c.get("gamma") is not None and c.get("p") is not None for c in configs):
        out = root / "figures" / f"grid-{metric}.png"
        result.figure = visualize(runs, "grid", VizOptions(out=out, metric=metric))[0]
    else:
        result.notes.append("no grid figure: the points do not all set gamma and p")
    return result
