"""Where the points run: local worker processes, or one SLURM job array through submitit."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from duvae_cli.errors import UsageError
from duvae_cli.progress import SILENT, Reporter
from duvae_cli.sweep.points import PointSpec, run_point


@dataclass(frozen=True)
class SlurmOptions:
    partition: str | None = None
    gpus: int = 0  # per task
    time_min: int = 60  # wall-clock limit per task
    cluster: str | None = None  # submitit's: None = SLURM when available; "local"/"debug" in tests


def run_local(specs: list[PointSpec], workers: int, reporter: Reporter = SILENT) -> list[dict]:
    """`workers` points at a time; each is a `duvae` subprocess (threads here only wait on them)."""
    results = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(run_point, spec): spec for spec in specs}
        for future in as_completed(futures):
            results.append(_note(future.result(), reporter))
    return results


def run_slurm(specs: list[PointSpec], root: Path, workers: int, options: SlurmOptions,
              reporter: Reporter = SILENT) -> list[dict]:
    """One job array, at most `workers` tasks at a time; waits for every task (a second call of the
    same sweep skips what finished). submitit's logs go to ROOT/slurm/."""
    try:
        import submitit
    except ImportError:
        raise UsageError('--launcher slurm: the submitit package is not installed; '
                         'pip install "duvae[tracking]"') from None
    executor = submitit.AutoExecutor(folder=str(root / "slurm" / "%j"), cluster=options.cluster)
    threads = int(specs[0].env.get("OMP_NUM_THREADS", 1)) if specs else 1
    executor.update_parameters(timeout_min=options.time_min, gpus_per_node=options.gpus, tasks_per_node=1,
                               cpus_per_task=threads, slurm_array_parallelism=workers,
                               name=f"duvae-sweep-{root.name}",
                               **({"slurm_partition": options.partition} if options.partition else {}))
    jobs = executor.map_array(run_point, specs)
    reporter.log(f"submitted {len(jobs)} tasks as job {jobs[0].job_id.split('_')[0] if jobs else '-'}")
    return [_note(job.result(), reporter) for job in jobs]


def _note(result: dict, reporter: Reporter) -> dict:
    reporter.log(f"{result['name']}: {result['status']}" + (f" ({result['error']})" if result["error"] else ""))
    return result


def parse_time(text: str) -> int:
    """--slurm-time: minutes ("90") or [D-]HH:MM[:SS] -> whole minutes (at least 1)."""
    match = re.fullmatch(r"(?:(\d+)-)?(\d+):(\d{2})(?::(\d{2}))?", text.strip())
    if text.strip().isdigit():
        return max(1, int(text))
    if not match:
        raise UsageError(f"--slurm-time {text!r}: give minutes (90) or HH:MM[:SS] (1:30:00)")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return max(1, days * 1440 + hours * 60 + minutes + (seconds > 0))
