"""Is a stored number still the number of the run's checkpoint? (design.md §7, docs/reliability.md)

Every metrics.csv and probe.csv row names the checkpoint it was computed from (`checkpoint`, best or
last, and its `checkpoint_sha256`). Training on (`train --resume`, a sweep rerun with more epochs)
replaces that file, so a number is

- `current` when the sha256 of RUN/checkpoints/<checkpoint>.safetensors today is the stored one (an
  export folder: the sha256 of the run's checkpoint it holds, once its files verify; runs/exported.py);
- `stale` when they differ: the number is of an earlier checkpoint;
- `unverified` when either is unknown (no such checkpoint file; a row without its sha256).

Hashing a checkpoint of hundreds of MB each time a table is drawn is slow, so the sha256 is cached
in RUN/checkpoints/.sha256.json per checkpoint name, keyed by the file's size, mtime_ns, inode and
ctime_ns. duvae replaces a checkpoint by writing a new file and renaming it over the old one (a new
inode, new times), and any copy or in-place rewrite changes mtime or ctime, so a changed file never
matches its old key. The cache is a convenience: an unreadable or unwritable one (read-only run)
is ignored and the file is hashed.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from duvae_cli.io import atomic_write_text, sha256_file
from duvae_cli.runs.layout import checkpoint_path, is_export

CACHE = ".sha256.json"
STATES = ("current", "stale", "unverified")


def _stat_key(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]


def current_sha256(run_dir: Path, checkpoint: str) -> str | None:
    """sha256 of RUN/checkpoints/<checkpoint>.safetensors now (None when there is no such file)."""
    if is_export(run_dir):  # verified against its card first: a tampered export is refused
        from duvae_cli.runs.exported import export_sha256  # (h5py and numpy: only for an export)

        return export_sha256(Path(run_dir), checkpoint)
    path = checkpoint_path(run_dir, checkpoint)
    key = _stat_key(path)
    if key is None:
        return None
    cache_path = path.parent / CACHE
    try:
        cache = json.loads(cache_path.read_text(encoding="utf-8"))
        cache = cache if isinstance(cache, dict) else {}
    except (OSError, ValueError):
        cache = {}
    entry = cache.get(checkpoint)
    if isinstance(entry, dict) and entry.get("stat") == key and isinstance(entry.get("sha256"), str):
        return entry["sha256"]
    sha = sha256_file(path)
    if _stat_key(path) == key:  # not replaced while it was read
        cache[checkpoint] = {"stat": key, "sha256": sha}
        try:
            atomic_write_text(cache_path, json.dumps(cache, indent=1, sort_keys=True) + "\n")
        except OSError:
            pass  # a read-only run: no cache, same answer
    return sha


def state(stored: str | None, current: str | None) -> str:
    """current, stale or unverified (see the module's docstring)."""
    if not stored or current is None:
        return "unverified"
    return "current" if stored == current else "stale"


def shown_path(run_dir: Path) -> str:
    """The run as a user would type it: relative to the working directory when inside it."""
    run_dir = Path(run_dir)
    try:
        return str(run_dir.relative_to(Path.cwd()))
    except ValueError:
        return str(run_dir)


def _known(value) -> bool:
    return isinstance(value, str) and value != ""


def evaluate_command(run_dir: Path, split: str, checkpoint: str, settings: dict, estimators=()) -> str:
    """The `duvae evaluate` command that recomputes numbers made with `settings` (tables/runs.py
    SETTINGS; unknown ones are left at their defaults) on the current checkpoint."""
    words = ["duvae", "evaluate", shown_path(run_dir), "--split", split, "--checkpoint", checkpoint]
    for name, option in (("n_samples", "--iw-samples"), ("examples", "--examples"), ("seed", "--seed")):
        if _known(settings.get(name)):
            words += [option, settings[name]]
    if settings.get("mi_estimator") == "batch":
        words += ["--mi-estimator", "batch"]
        sizes = [m.group(1) for e in estimators if (m := re.match(r"per-batch-(\d+)", str(e)))]
        words += ["--batch-size", sizes[0]] if sizes else []
    if _known(settings.get("au_threshold")) and settings["au_threshold"] != "0.01":  # not the default
        words += ["--au-threshold", settings["au_threshold"]]
    return " ".join(shlex.quote(str(w)) for w in words)


def classify_command(run_dir: Path, checkpoint: str, rows: list[dict]) -> str:
    """The `duvae classify` command that recomputes probe.csv rows on the current checkpoint."""
    words = ["duvae", "classify", shown_path(run_dir), "--checkpoint", checkpoint]
    budgets = sorted({int(r["labels"]) for r in rows if str(r.get("labels", "")).isdigit()})
    if any(str(r.get("subset", "")).startswith("first-") for r in rows):  # Omniglot: per alphabet
        words += [w for k in budgets for w in ("--per-class", k)]
    else:
        repeats = {int(r["repeat"]) for r in rows if str(r.get("repeat", "")).isdigit()}
        words += [w for n in budgets for w in ("--labels", n)]
        words += ["--repeats", max(repeats) + 1] if repeats and max(repeats) > 0 else []
    seeds = [r["seed"] for r in rows if str(r.get("repeat", "0")) == "0" and _known(r.get("seed"))]
    words += ["--seed", seeds[0]] if seeds else []
    return " ".join(shlex.quote(str(w)) for w in words)


def freshness_note(stale: dict[str, list[str]], unverified: dict[str, str]) -> str:
    """One line: the runs with stale numbers and the commands that refresh them; the runs whose
    numbers cannot be checked and why. '' when every number is current."""
    parts = []
    if stale:
        commands = [c for run in stale for c in stale[run]]
        parts.append(f"stale numbers (the checkpoint changed since they were computed) in {len(stale)} "
                     f"run(s): {', '.join(stale)}; refresh with: {' ; '.join(dict.fromkeys(commands))}")
    if unverified:
        why = ", ".join(f"{run} ({reason})" for run, reason in unverified.items())
        parts.append(f"numbers that cannot be checked against their checkpoint in {len(unverified)} run(s): {why}")
    return "; ".join(parts)
