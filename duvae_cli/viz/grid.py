"""Figure 2: a heat map of one metric over DU-VAE's gamma x p, one cell per setting, from many runs
(gamma and p from each run's config.json; runs sharing a cell, e.g. seeds, are averaged). Each run
gives the value of its latest evaluation (tables/runs.py `metric_value`), checked against the run's
checkpoint as it is now: a stale number is marked in its cell and the caption (tables/fresh.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from duvae_cli.errors import DuvaeError
from duvae_cli.progress import SILENT, Reporter, note
from duvae_cli.runs.layout import SUFFIX
from duvae_cli.tables import fresh
from duvae_cli.tables.runs import SETTINGS, MetricValue, metric_value, read_config, settings_of
from duvae_cli.viz.figure import label_figure, new_figure


def grid_values(runs: list[Path], metric: str, split: str = "test", checkpoint: str = "best") -> dict:
    """{gammas, ps, mean (G, P) with NaN where no run, count (G, P), sources, dataset, stale (the
    (i, j) cells holding a number of an earlier checkpoint), note (the one-line freshness note)}."""
    cells: dict[tuple[float, float], list[float]] = {}
    sources, datasets, stale_cells = set(), set(), set()
    stale: dict[str, list[str]] = {}
    unverified: dict[str, str] = {}
    for run in runs:
        config = read_config(run)
        if config.get("gamma") is None or config.get("p") is None:
            raise DuvaeError(f"{run}: --kind grid needs runs with gamma and p in config.json "
                             f"(this is a {config.get('model')!r} run)")
        found = metric_value(run, metric, split, checkpoint)
        cell = (float(config["gamma"]), float(config["p"]))
        cells.setdefault(cell, []).append(found.value)
        if _freshness(Path(run), found, split, checkpoint, stale, unverified) == "stale":
            stale_cells.add(cell)
        sources.add(found.source)
        datasets.add(str(config.get("dataset")))
    gammas, ps = sorted({g for g, _ in cells}), sorted({p for _, p in cells})
    mean = np.full((len(gammas), len(ps)), np.nan)
    count = np.zeros_like(mean, dtype=int)
    for (g, p), values in cells.items():
        mean[gammas.index(g), ps.index(p)], count[gammas.index(g), ps.index(p)] = np.mean(values), len(values)
    return {"gammas": gammas, "ps": ps, "mean": mean, "count": count, "sources": sorted(sources),
            "dataset": ", ".join(sorted(datasets)),
            "stale": {(gammas.index(g), ps.index(p)) for g, p in stale_cells},
            "note": fresh.freshness_note(stale, unverified)}


def _freshness(run: Path, found: MetricValue, split: str, checkpoint: str, stale: dict, unverified: dict) -> str:
    """current, stale or unverified for a metrics.csv value (recorded in `stale` / `unverified` by run
    name); a history.csv value was logged by training itself and carries no checkpoint: current."""
    if found.row is None:
        return "current"
    current = fresh.current_sha256(run, checkpoint)
    state = fresh.state(found.row.get("checkpoint_sha256"), current)
    if state == "stale":
        settings = dict(zip(SETTINGS, settings_of(found.row, run)))
        stale[run.name] = [fresh.evaluate_command(run, split, checkpoint, settings, [found.row["estimator"]])]
    elif state == "unverified":
        unverified[run.name] = f"no checkpoints/{checkpoint}{SUFFIX}" if current is None else "no checkpoint_sha256"
    return state


def draw_grid(runs: list[Path], metric: str, split: str = "test", checkpoint: str = "best",
              reporter: Reporter = SILENT) -> Figure:
    """The heat map; a cell holding a stale number says so, and so does one line on stderr."""
    values = grid_values(runs, metric, split, checkpoint)
    if values["note"]:
        note(reporter, values["note"])
    mean, count = values["mean"], values["count"]
    fig = new_figure(1.1 * len(values["ps"]) + 3.0, 0.8 * len(values["gammas"]) + 2.5)
    ax = fig.subplots()
    image = ax.imshow(np.ma.masked_invalid(mean), origin="lower", cmap="viridis", aspect="auto")
    fig.colorbar(image, ax=ax, label=metric)
    ax.set_xticks(range(len(values["ps"])), [f"{p:g}" for p in values["ps"]])
    ax.set_yticks(range(len(values["gammas"])), [f"{g:g}" for g in values["gammas"]])
    ax.set(xlabel="p (keep probability of the variance dropout)", ylabel="gamma (BN scale of the means)")
    finite = mean[np.isfinite(mean)]
    middle = (finite.min() + finite.max()) / 2 if len(finite) else 0.0
    for (i, j), value in np.ndenumerate(mean):
        if np.isfinite(value):
            text = f"{value:.3g}" + (f"\n(n={count[i, j]})" if count[i, j] > 1 else "")
            text += "\nSTALE" if (i, j) in values["stale"] else ""
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="black" if value > middle else "white")
    names = ", ".join(run.name for run in runs) if len(runs) <= 6 else f"{len(runs)} runs"
    stale = "; STALE cells hold numbers of an earlier checkpoint" if values["stale"] else ""
    label_figure(fig, f"{metric} over gamma x p ({values['dataset']})",
                 f"runs: {names}; " + "; ".join(values["sources"]) + "; cells: mean over runs" + stale)
    return fig
