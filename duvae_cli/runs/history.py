"""history.csv: one row per epoch, rewritten atomically from the full list (so resume is exact)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from duvae_cli.io import atomic_write_text


def write_history(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())
