"""Verdicts of the replication's hypotheses (docs/replication.md, "Hypotheses and decision rule").

Pure statistics (`paired`, `verdict`, `combine`) and the readers/writers `replicate.py verdicts`
uses: per-run values from metrics.csv / probe.csv / history.csv, per-model tables (mean +- std over
seeds), per-claim tables (paired differences by seed, SE, verdict) and one training-curve figure
per dataset.

The per-run outputs of a comparison are a committed file, `docs/replication/<comparison>/runs.csv`
(`write_runs`): one row per finished run with its config, code commit, checkpoint sha256, data
fingerprints and every metric; every table and verdict is computed from that file (`read_runs`),
so anyone can recompute them from the repository alone (tests/test_replication_verdicts.py does).

The rule, fixed before any result: for a claim "A beats B by more than -margin" on metric M, the
differences d_s = M(A, seed s) - M(B, seed s) are paired by seed over the n seeds where both runs
finished; mean d, sample standard deviation sd (n - 1 in the denominator), SE = sd / sqrt(n).
  holds           when mean d - 2 SE > -margin
  does not hold   when mean d + 2 SE < -margin
  cannot be told  otherwise, and always when n < 2.
Strict claims ("A > B") have margin 0: holds when mean d > 2 SE, does not hold when mean d < -2 SE.
A hypothesis made of several claims holds when every claim holds, does not hold when any does not
hold, and otherwise cannot be told.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

HOLDS, FAILS, UNDECIDED = "holds", "does not hold", "cannot be told"


@dataclass(frozen=True)
class Paired:
    n: int
    differences: tuple[float, ...]  # A - B per paired seed, in seed order
    mean: float
    sd: float  # sample standard deviation (ddof 1); NaN when n < 2
    se: float  # sd / sqrt(n); NaN when n < 2


def paired(a: dict[int, float], b: dict[int, float]) -> Paired:
    """Differences a[s] - b[s] over the seeds present (and finite) in both."""
    seeds = sorted(s for s in a.keys() & b.keys() if math.isfinite(a[s]) and math.isfinite(b[s]))
    d = np.array([a[s] - b[s] for s in seeds], dtype=float)
    n = len(d)
    mean = float(d.mean()) if n else math.nan
    sd = float(d.std(ddof=1)) if n >= 2 else math.nan
    return Paired(n, tuple(float(x) for x in d), mean, sd, sd / math.sqrt(n) if n >= 2 else math.nan)


def verdict(p: Paired, margin: float = 0.0) -> str:
    """The three-outcome rule of the module docstring for "A - B > -margin"."""
    if p.n < 2:
        return UNDECIDED
    if p.mean - 2 * p.se > -margin:
        return HOLDS
    if p.mean + 2 * p.se < -margin:
        return FAILS
    return UNDECIDED


def combine(verdicts: list[str]) -> str:
    """A hypothesis of several claims: all hold -> holds; any fails -> does not hold; else undecided."""
    if verdicts and all(v == HOLDS for v in verdicts):
        return HOLDS
    return FAILS if FAILS in verdicts else UNDECIDED


@dataclass(frozen=True)
class Claim:
    part: str  # runs/PART
    metric: str  # a column of the per-run table
    a: str
    b: str
    margin: float = 0.0  # in the metric's table units (accuracy: percentage points)

    def text(self) -> str:
        op = ">" if self.margin == 0 else f">= (margin {self.margin:g})"
        return f"{self.a} {op} {self.b} on {self.metric}"


# The pre-registered hypotheses (docs/replication.md); accuracies in percentage points.
HYPOTHESES = {
    "H1": ("short yelp: DU-VAE's probe accuracy with 100 labels beats BN-VAE's and the VAE's",
           [Claim("short-yelp", "acc@100", "du", "bn"), Claim("short-yelp", "acc@100", "du", "vae")]),
    "H2": ("short yelp: DU-VAE keeps more MI than BN-VAE at the same gamma (0.5)",
           [Claim("short-yelp", "mi", "du", "bn")]),
    "H3": ("Omniglot (small networks): DU-VAE's 5-per-character probe beats the VAE's and is at least BN-VAE's",
           [Claim("omniglot", "acc@5", "du", "vae"), Claim("omniglot", "acc@5", "du", "bn", margin=1.0)]),
}
# "Beyond the paper" (issue #31), fixed in docs/replication.md before any of its runs.
HYPOTHESES.update({
    "B1": ("synthetic: LIDVAE keeps more mutual information than the VAE, each at its full preset",
           [Claim("beyond-synthetic", "mi", "lidvae", "vae")]),
    "B2": ("synthetic: DU-VAE's probe accuracy with 100 labels is at least LIDVAE's",
           [Claim("beyond-synthetic", "acc@100", "du", "lidvae", margin=1.0)]),
    "B3": ("synthetic: cyclical KL annealing keeps more mutual information than the linear warm-up (VAE)",
           [Claim("beyond-synthetic", "mi", "cyc", "vae")]),
    "B4": ("Omniglot (small networks): CR-VAE's 5-per-character probe is at least the VAE's",
           [Claim("beyond-omniglot", "acc@5", "cr-vae", "vae", margin=1.0)]),
})
INFORMATIVE = [Claim("omniglot", "acc@5", "du", "bn")]  # the strict reading of H3's second claim

# Per-run columns: (metric, rows of metrics.csv with this K (n_samples)); the K=500 subset gives
# IW-NLL, the K=1 whole-test evaluation everything else (replicate.py evaluates both).
METRICS = [("iw_nll", "iw"), ("elbo_nll", "full"), ("kl", "full"), ("mi", "full"), ("au", "full")]


def _of_checkpoint(frame: pd.DataFrame, sha256: str | None) -> pd.DataFrame:
    """The rows of the best checkpoint as it is now: a number of an earlier best checkpoint is not this run's."""
    frame = frame[frame["checkpoint"].fillna("best") == "best"] if "checkpoint" in frame else frame
    if sha256 and "checkpoint_sha256" in frame:
        frame = frame[frame["checkpoint_sha256"] == sha256]
    return frame


def run_values(run: Path, iw_samples: int, sha256: str | None = None) -> dict[str, float]:
    """One run's numbers: METRICS, every test metric as METRIC@K<k>, acc@N and valid_acc@N (repeat 0,
    in %), all of the best checkpoint whose sha256 is `sha256`; and training facts."""
    out: dict[str, float] = {}
    metrics = run / "metrics.csv"
    if metrics.exists():
        frame = _of_checkpoint(pd.read_csv(metrics), sha256)
        frame = frame[frame["split"] == "test"]
        for name, which in METRICS:
            k = iw_samples if which == "iw" else 1
            rows = frame[(frame["metric"] == name) & (frame["n_samples"] == k)]
            if len(rows):
                out[name] = float(rows["value"].iloc[-1])
        for (name, k), rows in frame.groupby(["metric", "n_samples"]):
            out[f"{name}@K{int(k)}"] = float(rows["value"].iloc[-1])
    probe = run / "probe.csv"
    if probe.exists():
        frame = _of_checkpoint(pd.read_csv(probe), sha256)
        frame = frame[frame["metric"] == "accuracy"]
        if "repeat" in frame:
            frame = frame[frame["repeat"].fillna(0) == 0]
        for (split, labels), rows in frame.groupby(["split", "labels"]):
            if split in ("test", "valid"):
                prefix = "acc" if split == "test" else "valid_acc"
                out[f"{prefix}@{int(labels)}"] = 100.0 * float(rows["value"].iloc[-1])
    history = run / "history.csv"
    if history.exists():
        h = pd.read_csv(history)
        if len(h):
            out["epochs"] = float(len(h))
            out["halvings"] = float((h["lr"].diff() < 0).sum())
            out["best_epoch"] = float(h.loc[h["val_loss"].idxmin(), "epoch"])
            out["train_min"] = float(h["seconds"].sum()) / 60
    return out


def run_record(run: Path) -> dict:
    """What made one run's numbers: its config (JSON), code commit, the best checkpoint's sha256 now,
    and the fingerprints of the data it was trained on (binding.json; older runs: the file's sha256)."""
    from duvae_cli.io import sha256_file

    def read(name: str) -> dict:
        path = run / name
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    manifest, binding, best = read("manifest.json"), read("binding.json"), run / "checkpoints" / "best.safetensors"
    return {"run": run.name, "checkpoint": "best", "checkpoint_sha256": sha256_file(best) if best.is_file() else "",
            "dataset_sha256": binding.get("dataset_sha256", manifest.get("data_sha256", "")),
            **{f"split_sha256_{s}": f for s, f in sorted(binding.get("splits", {}).items())},
            "git_sha": manifest.get("git_sha") or "", "config": json.dumps(read("config.json"), sort_keys=True)}


def collect(work: Path, iw_samples: dict[str, int]) -> pd.DataFrame:
    """Every finished run under WORK/runs/PART/MODEL-sSEED: one row (part, model, seed, provenance,
    values)."""
    rows = []
    for part, k in iw_samples.items():
        for run in sorted((work / "runs" / part).glob("*-s*")):
            if run.is_symlink() or not (run / "replicate" / "done").exists():
                continue
            model, seed = run.name.rsplit("-s", 1)
            record = run_record(run)
            rows.append({"part": part, "model": model, "seed": int(seed), **record,
                         **run_values(run, k, record["checkpoint_sha256"])})
    return pd.DataFrame(rows)


def write_runs(frame: pd.DataFrame, path: Path) -> None:
    """The committed per-run outputs (docs/replication/<comparison>/runs.csv), written atomically."""
    from duvae_cli.io import atomic_path

    with atomic_path(path, suffix=".csv.tmp") as tmp:
        frame.sort_values(["part", "model", "seed"]).to_csv(tmp, index=False)


def read_runs(path: Path) -> pd.DataFrame:
    """runs.csv back as the frame every table and verdict is computed from."""
    frame = pd.read_csv(path, dtype={"config": str, "git_sha": str})
    frame["seed"] = frame["seed"].astype(int)
    return frame


def _of_frame(frame: pd.DataFrame) -> dict:
    """The hypotheses of the comparison in `frame`: every hypothesis of the family (H: the paper's
    claims, B: beyond the paper) one of whose claims is about a part the frame has runs of; the
    others of that family are then shown too, as "cannot be told" until their runs exist."""
    parts = set(frame["part"]) if not frame.empty else set()
    families = {name[0] for name, (_, claims) in HYPOTHESES.items() if any(c.part in parts for c in claims)}
    return {name: h for name, h in HYPOTHESES.items() if name[0] in (families or {"H"})}


def hypothesis_verdicts(frame: pd.DataFrame) -> dict[str, str]:
    """{"H1": "holds", ...}: each hypothesis's verdict, as claims_markdown states it."""
    return {name: combine(claim_rows(frame, claims)[1]) for name, (_, claims) in _of_frame(frame).items()}


def by_seed(frame: pd.DataFrame, part: str, model: str, metric: str) -> dict[int, float]:
    if frame.empty or metric not in frame:
        return {}
    rows = frame[(frame["part"] == part) & (frame["model"] == model)]
    return {int(s): float(v) for s, v in zip(rows["seed"], rows[metric]) if pd.notna(v)}


NATS = ("iw_nll", "elbo_nll", "kl", "mi")  # columns in nats: shown with two decimals


def _fmt(values: list[float], digits: int = 2) -> str:
    v = np.array([x for x in values if math.isfinite(x)], dtype=float)
    if not len(v):
        return "—"
    sd = f" +- {v.std(ddof=1):.{digits}f}" if len(v) >= 2 else ""
    return f"{v.mean():.{digits}f}{sd}"


def _part_columns(frame: pd.DataFrame, part: str) -> tuple[pd.DataFrame, list[str]]:
    """The part's rows, and the per-run columns its tables show (the probe budgets it has)."""
    rows = frame[frame["part"] == part] if not frame.empty else frame
    accs = sorted((c for c in rows.columns if c.startswith("acc@") and rows[c].notna().any()),
                  key=lambda c: int(c[4:]))
    return rows, [m for m, _ in METRICS] + accs + ["epochs", "best_epoch", "halvings", "train_min"]


def model_table(frame: pd.DataFrame, part: str, models: list[str]) -> str:
    """Markdown: one row per model, mean +- std over its seeds of every per-run column."""
    rows, columns = _part_columns(frame, part)
    lines = ["| model | seeds | " + " | ".join(columns) + " |", "|---|---:|" + "---:|" * len(columns)]
    for model in models:
        own = rows[rows["model"] == model] if len(rows) else rows
        if not len(own):
            continue
        cells = [_fmt(list(own[c]) if c in own else [], 2 if c in NATS else 1) for c in columns]
        lines.append(f"| {model} | {','.join(map(str, sorted(own['seed'])))} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_table(frame: pd.DataFrame, part: str, models: list[str]) -> str:
    """Markdown: one row per run (model, seed), the values the model table summarises."""
    rows, columns = _part_columns(frame, part)
    lines = ["| model | seed | " + " | ".join(columns) + " |", "|---|---:|" + "---:|" * len(columns)]
    for model in models:
        own = rows[rows["model"] == model].sort_values("seed") if len(rows) else rows
        for _, r in own.iterrows():
            cells = [_fmt([float(r.get(c, math.nan))], 2 if c.startswith("acc@") or c in NATS else 0) for c in columns]
            lines.append(f"| {model} | {int(r['seed'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def claim_rows(frame: pd.DataFrame, claims: list[Claim]) -> tuple[list[str], list[str]]:
    """Markdown rows (claim, n, A, B, d per seed, mean d, SE, verdict) and the verdicts."""
    lines, verdicts = [], []
    for c in claims:
        a, b = by_seed(frame, c.part, c.a, c.metric), by_seed(frame, c.part, c.b, c.metric)
        p = paired(a, b)
        v = verdict(p, c.margin)
        verdicts.append(v)
        diffs = ", ".join(f"{x:+.2f}" for x in p.differences) or "—"
        lines.append(f"| {c.part}: {c.text()} | {p.n} | {_fmt(list(a.values()))} | {_fmt(list(b.values()))} | "
                     f"{diffs} | {p.mean:+.2f} | {p.se:.2f} | **{v}** |")
    return lines, verdicts


def claims_markdown(frame: pd.DataFrame) -> str:
    head = ["| claim | n | A (mean +- std) | B (mean +- std) | A - B per seed | mean | SE | verdict |",
            "|---|---:|---:|---:|---|---:|---:|---|"]
    out = []
    for name, (text, claims) in _of_frame(frame).items():
        lines, verdicts = claim_rows(frame, claims)
        out += [f"### {name}: {text} — **{combine(verdicts)}**", "", *head, *lines, ""]
    if "H3" in _of_frame(frame):
        lines, _ = claim_rows(frame, INFORMATIVE)
        out += ["Strict reading of H3's second claim (information, not a hypothesis):", "", *head, *lines, ""]
    return "\n".join(out)


CURVES = [("val_loss", "validation loss (nats)"), ("val_kl", "validation KL"), ("val_mi", "validation MI"),
          ("lr", "learning rate")]


def curves_figure(work: Path, part: str, models: list[str], out: Path) -> Path | None:
    """One figure per dataset: validation loss, KL, MI and lr per epoch; a line per run, one colour
    per model (seeds share the colour)."""
    from matplotlib.figure import Figure

    histories = {m: [(r.name, pd.read_csv(r / "history.csv")) for r in sorted((work / "runs" / part).glob(f"{m}-s*"))
                     if (r / "history.csv").exists() and not r.is_symlink()] for m in models}
    if not any(histories.values()):
        return None
    figure = Figure(figsize=(13, 3.4))
    axes = figure.subplots(1, len(CURVES))
    for (column, label), ax in zip(CURVES, axes):
        for i, model in enumerate(models):
            for j, (_, h) in enumerate(histories[model]):
                ax.plot(h["epoch"], h[column], color=f"C{i}", alpha=0.8, lw=1.2,
                        label=model if j == 0 else None)
        ax.set_xlabel("epoch"), ax.set_title(label, fontsize=10)
        if column == "lr":
            ax.set_yscale("log")
    axes[0].legend(fontsize=8)
    figure.suptitle(f"{part}: training curves (one line per seed)", fontsize=11)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp.png")
    figure.savefig(tmp, dpi=110, metadata={"Software": None})
    tmp.replace(out)
    return out


def busy_hours(starts: pd.Series, seconds: pd.Series) -> float:
    """Hours in which at least one step was running: the length of the union of the intervals
    [start, start + seconds), so that side-by-side jobs count once (the machine's time)."""
    begin = (pd.to_datetime(starts, utc=True) - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    spans = sorted(zip(begin, begin + seconds))
    total, end = 0.0, float("-inf")
    for start, stop in spans:
        total += max(0.0, stop - max(start, end))
        end = max(end, stop)
    return total / 3600


def machine_time(work: Path) -> str:
    """Time of every step replicate.py ran (WORK/steps.csv), per part and in all: process time
    (parallel jobs counted separately) and machine time (wall clock with any step running)."""
    path = work / "steps.csv"
    if not path.exists():
        return "no steps recorded"
    steps = pd.read_csv(path)
    per_part = steps.groupby("part")["seconds"].sum() / 3600
    parts = ", ".join(f"{p} {h:.2f} h" for p, h in per_part.items())
    busy = busy_hours(steps["started_utc"], steps["seconds"])
    return (f"process time (sum over steps, parallel jobs counted separately): {parts}; total "
            f"{per_part.sum():.2f} h. Machine time (wall clock with at least one step running): {busy:.2f} h")
