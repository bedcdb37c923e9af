"""Which checkpoint each `--then` step of a sweep point ran on: POINT/sweep-then.json.

    {"then": {"evaluate --iw-samples 500": {"checkpoint": "best", "sha256": "9c41...", "utc": "..."}}}

A step runs again whenever the checkpoint it reads (`best`, or what its `--checkpoint` says) is not
the file it last ran on, e.g. after the sweep resumed the point for more epochs. When an evaluate or
classify step has run on a new checkpoint file, the rows of metrics.csv (probe.csv) made from an
earlier file of that checkpoint name move to POINT/superseded/metrics.csv (probe.csv): the point's
tables hold the numbers of its current checkpoints only, and nothing is deleted.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

from duvae_cli.io import atomic_path, atomic_write_text, sha256_file
from duvae_cli.locking import locked_for_update
from duvae_cli.runs.layout import checkpoint_path

THEN_FILE = "sweep-then.json"
TABLES = {"evaluate": "metrics.csv", "classify": "probe.csv"}  # what each step writes rows to
SUPERSEDED = "superseded"


def checkpoint_of(argv: list[str]) -> str:
    """The checkpoint a `--then` step reads: its `--checkpoint` value, `best` by default."""
    for i, arg in enumerate(argv):
        if arg == "--checkpoint" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--checkpoint="):
            return arg.split("=", 1)[1]
    return "best"


def checkpoint_sha(run_dir: Path, name: str) -> str | None:
    path = checkpoint_path(run_dir, name)
    return sha256_file(path) if path.is_file() else None


def read_records(run_dir: Path) -> dict:
    """{step: {"checkpoint", "sha256", "utc"}}. A file from before these records ("then_done": the
    commands only) or a damaged one gives {}: every step then runs once more, which is always safe."""
    path = Path(run_dir) / THEN_FILE
    try:
        records = json.loads(path.read_text(encoding="utf-8")).get("then", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return records if isinstance(records, dict) else {}


def is_current(records: dict, step: str, checkpoint: str, sha: str | None) -> bool:
    """Whether `step` last ran on this very file of `checkpoint` (a missing checkpoint never is)."""
    record = records.get(step)
    return (sha is not None and isinstance(record, dict) and record.get("checkpoint") == checkpoint
            and record.get("sha256") == sha)


def record(run_dir: Path, step: str, checkpoint: str, sha: str) -> None:
    records = read_records(run_dir)
    records[step] = {"checkpoint": checkpoint, "sha256": sha,
                     "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    atomic_write_text(Path(run_dir) / THEN_FILE, json.dumps({"then": records}, indent=2, sort_keys=True) + "\n")


def supersede(run_dir: Path, command: str, checkpoint: str, sha: str) -> int:
    """Move the rows of `command`'s table (metrics.csv, probe.csv) made from another file of
    `checkpoint` than `sha` to POINT/superseded/; how many moved. Idempotent: a row already there is
    not added twice (a crash between the two writes leaves it in both, and the next call finishes)."""
    table = TABLES.get(command)
    path = Path(run_dir) / table if table else None
    if path is None or not path.is_file():
        return 0
    with locked_for_update(path):
        columns, rows = _read_csv(path)
        old = [r for r in rows
               if r.get("checkpoint") == checkpoint and r.get("checkpoint_sha256") not in ("", sha)]
        if not old:
            return 0
        target = path.parent / SUPERSEDED / table
        kept_columns, kept = _read_csv(target) if target.is_file() else ([], [])
        seen = {tuple(sorted(r.items())) for r in kept}
        moved = [r for r in old if tuple(sorted(r.items())) not in seen]
        _write_csv(target, kept_columns + [c for c in columns if c not in kept_columns], kept + moved)
        moved_ids = {id(r) for r in old}
        _write_csv(path, columns, [r for r in rows if id(r) not in moved_ids])
    return len(old)


def _read_csv(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def _write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    with atomic_path(path, suffix=".csv.tmp") as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, restval="")
            writer.writeheader()
            writer.writerows(rows)
