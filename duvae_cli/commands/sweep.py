"""`duvae sweep`: flags -> sweep.SweepOptions -> sweep.run_sweep; prints the report and the grid path.
Registered on the `duvae` app in cli.py."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from duvae_cli.commands.common import Json, LogOption, Quiet
from duvae_cli.errors import DuvaeError

Opt = typer.Option


def sweep(
    grid: Annotated[list[str], Opt("--grid", help="key=v1,v2,... over any config field (repeatable; the "
                                   "points are the product), e.g. --grid gamma=0.4,0.5 --grid p=1,0.8.")],
    seeds: Annotated[Optional[str], Opt(help="Seeds crossed with the grid, e.g. 1,2,3 (default: the "
                                        "config's seed).")] = None,
    root: Annotated[Optional[Path], Opt(help="Sweep directory (default runs/sweep-<dataset>-<model>).")] = None,
    dataset: Annotated[Optional[str], Opt(help="Prepared dataset name.")] = None,
    model: Annotated[Optional[str], Opt(help="Model (default du).")] = None,
    epochs: Annotated[Optional[int], Opt(help="Maximum epochs per point.")] = None,
    batch_size: Annotated[Optional[int], Opt(help="Batch size.")] = None,
    lr: Annotated[Optional[float], Opt(help="Learning rate.")] = None,
    device: Annotated[Optional[str], Opt(help="auto, cpu or cuda.")] = None,
    precision: Annotated[Optional[str], Opt(help="fp32, bf16 or fp16.")] = None,
    config: Annotated[Optional[Path], Opt(help="JSON file of config fields.")] = None,
    set_: Annotated[Optional[list[str]], Opt("--set", help="Override a config field: key=value.")] = None,
    log: LogOption = None,
    log_every: Annotated[Optional[int], Opt(help="Per-step values every N steps (default 10).")] = None,
    then: Annotated[Optional[list[str]], Opt("--then", help='Run after training each point, e.g. '
                                             '"evaluate --iw-samples 500" (repeatable).')] = None,
    workers: Annotated[int, Opt(help="Points run at once; the cores are split between them.")] = 1,
    launcher: Annotated[str, Opt(help="local (worker processes) or slurm (one job array, sbatch).")]
    = "local",
    dry_run: Annotated[bool, Opt("--dry-run", help="slurm: print the job script; submit and write nothing.")]
    = False,
    slurm_partition: Annotated[Optional[str], Opt(help="slurm: partition.")] = None,
    slurm_gpus: Annotated[int, Opt(help="slurm: GPUs per point.")] = 0,
    slurm_time: Annotated[str, Opt(help="slurm: time limit per point, minutes or HH:MM:SS.")] = "60",
    slurm_cpus: Annotated[int, Opt(help="slurm: CPUs per point (and its OMP_NUM_THREADS).")] = 1,
    slurm_mem: Annotated[Optional[str], Opt(help="slurm: memory per point, e.g. 16G.")] = None,
    slurm_account: Annotated[Optional[str], Opt(help="slurm: account to charge.")] = None,
    slurm_qos: Annotated[Optional[str], Opt(help="slurm: quality of service.")] = None,
    slurm_constraint: Annotated[Optional[str], Opt(help="slurm: node features, e.g. a100.")] = None,
    slurm_setup: Annotated[Optional[list[str]], Opt(help="slurm: a shell line run before each point, e.g. "
                                                    "'module load cuda' (repeatable, in order).")] = None,
    metric: Annotated[str, Opt(help="Metric of the gamma x p grid figure (mi, au, iw_nll, val_loss, ...).")]
    = "mi",
    quiet: Quiet = False,
    json: Json = False,
) -> None:
    """Train a grid of runs (resumable: finished points are skipped, interrupted ones resumed), then
    print the sweep's report and draw its Figure-2 grid.

    Example: duvae sweep --grid gamma=0.4,0.5,0.6,0.7 --grid p=1,0.9,0.8,0.7,0.6 --workers 2
    """
    from duvae_cli.console import CliReporter, emit_json
    from duvae_cli.sweep import SweepOptions, run_sweep
    from duvae_cli.sweep.grid import parse_grid, parse_seeds
    from duvae_cli.sweep.slurm import SlurmOptions, parse_time
    from duvae_cli.tracking import check_trackers

    reporter = CliReporter(quiet)
    flags = dict(dataset=dataset, model=model, epochs=epochs, batch_size=batch_size, lr=lr, device=device,
                 precision=precision)
    slurm = SlurmOptions(partition=slurm_partition, gpus=slurm_gpus, time_min=parse_time(slurm_time),
                         cpus=slurm_cpus, mem=slurm_mem, account=slurm_account, qos=slurm_qos,
                         constraint=slurm_constraint, setup=tuple(slurm_setup or ()))
    options = SweepOptions(grid=parse_grid(grid), seeds=parse_seeds(seeds), root=root, flags=flags,
                           config_file=config, sets=tuple(set_ or ()),
                           trackers=check_trackers(log, log_every), log_every=log_every,
                           thens=tuple(then or ()), workers=workers, launcher=launcher, slurm=slurm,
                           dry_run=dry_run, metric=metric, resume=shlex.join(["duvae", *sys.argv[1:]]))
    result = run_sweep(options, reporter)
    for note in result.notes:
        reporter.log(note)
    if json:
        emit_json({"root": str(result.root), "points": result.points, "report": result.report,
                   "figure": str(result.figure) if result.figure else None, "script": result.script})
    else:
        sys.stdout.write(result.script or result.report or "")
        if result.figure:
            typer.echo(str(result.figure))
    if result.failed:
        raise DuvaeError(f"{len(result.failed)} of {len(result.points)} points failed: "
                         + "; ".join(f"{p['name']}: {p['error']}" for p in result.failed))


def sweep_task(
    tasks: Annotated[Path, typer.Argument(help="ROOT/slurm/tasks.json, written by `duvae sweep "
                                          "--launcher slurm`.")],
    index: Annotated[int, typer.Argument(help="The array task: $SLURM_ARRAY_TASK_ID.")],
) -> None:
    """One SLURM array task of a sweep: its point's commands (hidden: the job script calls it).

    Example: duvae sweep-task runs/sweep-yelp-du/slurm/tasks.json 3
    """
    from duvae_cli.sweep.slurm import run_task

    result = run_task(tasks, index)
    if result["status"] == "failed":
        raise DuvaeError(f"{result['name']}: {result['error']}")
