"""`duvae migrate RUN`: a run made by an earlier duvae (pickled checkpoints) in today's format.

Earlier versions wrote RUN/checkpoints/{best,last}.pt with `torch.save`, a pickle. duvae no longer
unpickles anything it reads; such a run is refused in one line naming this command, which converts it
without executing code from the file (docs/runs.md, docs/reliability.md):

1. `torch.serialization.get_unsafe_globals_in_checkpoint` lists every global the pickle names,
   without unpickling it. duvae's checkpoints held dicts, lists, tuples, numbers, strings, None, an
   OrderedDict (the state dicts) and tensors, all within PyTorch's own weights-only set, so the
   allow-list of further globals, ALLOWED, is empty: a file naming any other global (`os.system`,
   `builtins.exec`, a class) is refused unread, naming it.
2. `torch.load(weights_only=True)` (PyTorch's restricted unpickler, which builds only those types
   and never imports or calls anything else) reads the payload, on the CPU.
3. RUN/checkpoints/NAME.safetensors is written atomically and read back; every tensor must equal
   the pickled one bit for bit (dtype, shape, values) and every other value be the same.
4. The metrics.csv / probe.csv rows computed from the old file (its sha256) are moved to the new
   file's sha256: they are numbers of the same weights, so they stay current (tables/fresh.py);
   manifest.json `migrated` records both sha256 per checkpoint. metrics.h5 groups keep their names.
5. The .pt files are removed. A migration stopped half-way is finished by running it again.
"""

from __future__ import annotations

import csv
import io
import math
import time
from pathlib import Path

import torch

from duvae_cli import __version__, locking
from duvae_cli.errors import DuvaeError, UsageError
from duvae_cli.io import atomic_path, sha256_file
from duvae_cli.runs.checkpoint import load_checkpoint, save_checkpoint
from duvae_cli.runs.layout import LOCK, NAMES, checkpoint_path, is_export, old_checkpoint_path, require_run_dir
from duvae_cli.runs.run import read_json, write_json
from duvae_cli.runs.trust import check_folder

ALLOWED: frozenset[str] = frozenset()  # globals beyond PyTorch's weights-only set that duvae stored: none


def migrate_run(run_dir: Path) -> dict:
    """Convert every pickled checkpoint of `run_dir`; a summary {run, converted: {name: {from, to}}}."""
    run_dir = Path(run_dir)
    require_run_dir(run_dir)
    if not (run_dir / "config.json").is_file():
        raise DuvaeError(f"{run_dir}: not a duvae run directory (no config.json)")
    if is_export(run_dir):
        raise UsageError(f"{run_dir}: an export, already in the safetensors format")
    check_folder(run_dir)
    olds = {name: old_checkpoint_path(run_dir, name) for name in NAMES if old_checkpoint_path(run_dir, name).exists()}
    if not olds:
        return {"run": str(run_dir), "converted": {}}
    converted = {}
    with locking.hold(run_dir / LOCK, f"run {run_dir}"):
        for name, old in olds.items():
            converted[name] = {"from_sha256": sha256_file(old), "sha256": _convert(old, checkpoint_path(run_dir, name))}
        for table in ("metrics.csv", "probe.csv"):
            _move_rows(run_dir / table, converted)
        info = read_json(run_dir / "manifest.json")
        info.setdefault("migrated", []).append({"utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                                "duvae_version": __version__, "checkpoints": converted})
        write_json(run_dir / "manifest.json", info)
        for old in olds.values():
            old.unlink()
    return {"run": str(run_dir), "converted": converted}


def unpickle_restricted(path: Path) -> dict:
    """The payload of a pickled duvae checkpoint, read by PyTorch's restricted unpickler only."""
    from torch.serialization import get_unsafe_globals_in_checkpoint

    try:
        unsafe = set(get_unsafe_globals_in_checkpoint(str(path)))
    except Exception as exc:  # noqa: BLE001 - not a zip-format torch.save file
        raise DuvaeError(f"{path}: not a checkpoint of an earlier duvae ({type(exc).__name__}); not converted") from None
    if unsafe - ALLOWED:
        raise DuvaeError(f"{path}: names {', '.join(sorted(unsafe - ALLOWED))}, which duvae never stored; "
                         "refusing to unpickle it (nothing was run)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - the restricted unpickler refuses anything else
        raise DuvaeError(f"{path}: refused by PyTorch's restricted unpickler ({str(exc).splitlines()[0][:160]})") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("model"), dict):
        raise DuvaeError(f"{path}: not a duvae checkpoint (no model state)")
    return payload


def _convert(old: Path, new: Path) -> str:
    """Write `new` from `old`, check it reads back the same; its sha256."""
    payload = unpickle_restricted(old)
    save_checkpoint(new, payload)
    difference = first_difference(payload, load_checkpoint(new))
    if difference is not None:
        new.unlink()
        raise DuvaeError(f"{old}: converted file differs at {difference}; {old} kept, nothing changed")
    return sha256_file(new)


def first_difference(a, b, where: str = "") -> str | None:
    """The first place where two payloads differ (tensors bit for bit), or None."""
    if torch.is_tensor(a) or torch.is_tensor(b):
        same = (torch.is_tensor(a) and torch.is_tensor(b) and a.dtype == b.dtype and a.shape == b.shape
                and torch.equal(a.cpu(), b.cpu()))
        return None if same else where or "/"
    if isinstance(a, dict) and isinstance(b, dict):
        if list(a) != list(b):
            return f"{where}/ (keys)"
        return next((d for k in a if (d := first_difference(a[k], b[k], f"{where}/{k}")) is not None), None)
    if isinstance(a, (list, tuple)) and type(a) is type(b) and len(a) == len(b):
        return next((d for i, (x, y) in enumerate(zip(a, b)) if (d := first_difference(x, y, f"{where}/{i}")) is not None), None)
    both_nan = isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
    return None if both_nan or (type(a) is type(b) and a == b) else where or "/"


def _move_rows(path: Path, converted: dict) -> None:
    """Rows of `path` computed from a converted file now name its new sha256 (same weights)."""
    if not path.is_file():
        return
    moves = {c["from_sha256"]: c["sha256"] for c in converted.values()}
    with locking.locked_for_update(path):  # evaluate's lock on its results
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            rows, columns = list(reader), reader.fieldnames or []
        if "checkpoint_sha256" not in columns or not any(r.get("checkpoint_sha256") in moves for r in rows):
            return
        for row in rows:
            row["checkpoint_sha256"] = moves.get(row["checkpoint_sha256"], row["checkpoint_sha256"])
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, columns)
        writer.writeheader()
        writer.writerows(rows)
        with atomic_path(path, suffix=".csv.tmp") as tmp:
            tmp.write_bytes(text.getvalue().encode("utf-8"))
