"""Figures and text samples drawn only from saved run artifacts (`duvae visualize`; docs/figures.md).

The only package that imports matplotlib. Figures are `matplotlib.figure.Figure` objects saved by file
extension (PNG, SVG, PDF) with fixed metadata, so the same run gives the same bytes.
"""

from __future__ import annotations

from dataclasses import field
from pathlib import Path

from duvae_cli.errors import UsageError
from duvae_cli.io import atomic_write_text
from duvae_cli.options import CHECKPOINT, DEVICE, Option, checked, options_dataclass
from duvae_cli.probe.features import dataset_kind
from duvae_cli.progress import SILENT, Reporter
from duvae_cli.runs.exported import verify_export
from duvae_cli.runs.layout import is_export
from duvae_cli.tables.runs import resolve_runs
from duvae_cli.viz.curves import draw_curves
from duvae_cli.viz.dims import draw_dims
from duvae_cli.viz.figure import figure_format, save_figure, style
from duvae_cli.viz.grid import draw_grid
from duvae_cli.viz.images import draw_image_samples
from duvae_cli.viz.latent import draw_latent
from duvae_cli.viz.samples import SPLIT, SampleOptions, sample_text


# `duvae visualize` (its flags: these, KIND and SAMPLE_OPTIONS; commands/figures.py).
VIZ_OPTIONS = (
    Option("out", Path, None, "Output file: .png, .svg or .pdf (samples: text); default RUN/figures/KIND.png."),
    Option("metric", str, "mi", "grid: a metrics.csv metric or history.csv column (mi, au, iw_nll, val_loss, ...)."),
    SPLIT, CHECKPOINT, DEVICE,
)


@options_dataclass(VIZ_OPTIONS)
class VizOptions:
    """Where a figure goes (None: RUN/figures/<kind>.png; grid: figures/grid-<metric>.png), the grid's
    metric, the split and checkpoint read, and the text samples' own options."""

    samples: SampleOptions = field(default_factory=SampleOptions)


def _samples(run: Path, options: VizOptions):
    """Text samples (a str) for a text run, the sample figure for an image run."""
    if dataset_kind(run) == "image":
        return draw_image_samples(run, options.samples)
    return sample_text(run, options.samples)


def _posteriors(run: Path, options: VizOptions):
    from duvae_cli.viz.artifacts import load_posteriors

    return load_posteriors(run, options.split, options.checkpoint, options.device)


# kind -> (draw(run, options) -> Figure or text, default file name); "grid" takes all runs at once.
PER_RUN = {
    "latent": (lambda run, o: draw_latent(_posteriors(run, o)), "latent.png"),
    "curves": (lambda run, o: draw_curves(run), "curves.png"),
    "dims": (lambda run, o: draw_dims(_posteriors(run, o)), "dims.png"),
    "samples": (_samples, "samples.txt"),  # an image run: figures/samples.png
}
KINDS = [*PER_RUN, "grid"]
KIND = Option("kind", str, "latent", "latent, curves, dims, grid or samples.", choices=tuple(KINDS))


def visualize(runs: list[Path], kind: str, options: VizOptions = VizOptions(),
              reporter: Reporter = SILENT) -> list[Path]:
    """Draw `kind` for `runs` and write the file(s); returns the paths written. `reporter` gets the
    grid's line about stale numbers."""
    checked(KIND, kind)
    runs = resolve_runs(runs)
    if kind == "grid":
        path = options.out or Path("figures") / f"grid-{options.metric}.png"
        figure_format(path)  # fail on a bad extension before any work
        with style():
            figure = draw_grid(runs, options.metric, options.split, options.checkpoint, reporter)
            return [save_figure(figure, path)]
    if options.out is not None and len(runs) > 1:
        raise UsageError(f"--out {options.out}: names one file; give one run or leave --out unset")
    draw, default_name = PER_RUN[kind]
    written = []
    for run in runs:
        if is_export(run):  # checked against its card even where only history.csv is read
            if options.out is None:
                raise UsageError(f"{run}: an export, which stays as its author made it; name the file with --out")
            verify_export(run)
        image_samples = kind == "samples" and dataset_kind(run) == "image"
        path = options.out or run / "figures" / ("samples.png" if image_samples else default_name)
        if kind != "samples" or image_samples:
            figure_format(path)
        with style():
            result = draw(run, options)
            if isinstance(result, str):
                atomic_write_text(path, result)
            else:
                save_figure(result, path)
        written.append(Path(path))
    return written


__all__ = ["KINDS", "SampleOptions", "VizOptions", "visualize"]
