"""Figures without pyplot: a `matplotlib.figure.Figure` saved by extension, with reproducible bytes.

No global backend is set and no window is ever opened: `Figure.savefig` renders with Agg (PNG), the
SVG or the PDF backend chosen by the file extension. The metadata that would change from one save to
the next (software version, dates, SVG ids) is fixed, so the same inputs give the same file.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from duvae_cli.errors import UsageError
from duvae_cli.io import atomic_path

FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}
_METADATA = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None},
             "pdf": {"CreationDate": None, "ModDate": None, "Creator": None, "Producer": None}}
_RC = {"svg.hashsalt": "duvae", "svg.fonttype": "path", "pdf.fonttype": 42, "font.size": 9,
       "axes.titlesize": 9, "axes.labelsize": 9, "legend.fontsize": 8}
DPI = 120


def style():
    """The rcParams every duvae figure is drawn and saved under (a context manager)."""
    return matplotlib.rc_context(_RC)


def new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def integer_ticks(ax) -> None:
    """Whole-number ticks on the x axis (epochs, dimensions)."""
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def figure_format(path: Path) -> str:
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise UsageError(f"--out {path}: unknown figure format; use one of {', '.join(FORMATS)}")
    return fmt


def label_figure(fig: Figure, title: str, caption: str) -> None:
    """Every figure names its run and what is drawn (title) and the estimator/data (caption below);
    both are figure-level labels, so the constrained layout makes room for them."""
    fig.suptitle(title, fontsize=10)
    width = max(60, int(fig.get_figwidth() * 17))  # characters per caption line at 7 pt
    fig.supxlabel(textwrap.fill(caption, width), fontsize=7, ha="center")


def save_figure(fig: Figure, path: Path) -> Path:
    """Write `fig` to `path` (format from the extension) atomically; returns the path."""
    path = Path(path)
    fmt = figure_format(path)
    with style(), atomic_path(path, suffix=path.suffix) as tmp:
        fig.savefig(tmp, format=fmt, metadata=_METADATA[fmt], dpi=DPI)
    return path
