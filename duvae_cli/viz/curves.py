"""Training curves from `history.csv`: loss, KL, MI, AU, KL weight and learning rate per epoch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from duvae_cli.tables.runs import read_history
from duvae_cli.viz.figure import integer_ticks, label_figure, new_figure

# panel title -> (history columns, y label, log scale)
PANELS = {
    "loss": (("train_loss", "val_loss"), "nats / sentence", False),
    "KL": (("train_kl", "val_kl"), "nats / sentence", False),
    "MI": (("val_mi",), "nats", False),
    "AU": (("val_au",), "active units", False),
    "KL weight": (("kl_weight",), "weight", False),
    "learning rate": (("lr",), "lr", True),
}


def draw_curves(run_dir: Path) -> Figure:
    from duvae_cli.probe.features import dataset_kind

    history = read_history(run_dir)
    unit = "image" if dataset_kind(run_dir) == "image" else "sentence"
    epochs = history["epoch"].to_numpy()
    best = int(history.loc[history["val_loss"].idxmin(), "epoch"]) if "val_loss" in history else None
    fig = new_figure(10.0, 6.0)
    for ax, (title, (columns, ylabel, log)) in zip(fig.subplots(2, 3).ravel(), PANELS.items()):
        for column in columns:
            if column in history:
                ax.plot(epochs, history[column].to_numpy(dtype=float), marker="o", markersize=2.5,
                        label=column.replace("_", " "))
        if best is not None:
            ax.axvline(best, color="grey", linestyle=":", linewidth=1)
        if log and np.all(history.get(columns[0], np.ones(1)) > 0):
            ax.set_yscale("log")
        ax.set(title=title, xlabel="epoch", ylabel=ylabel.replace("sentence", unit))
        integer_ticks(ax)
        if len(columns) > 1:
            ax.legend()
    label_figure(fig, f"{Path(run_dir).name}: training curves",
                 "history.csv: train = mean over the epoch at the current KL weight; val = eval mode, KL weight 1, "
                 "MI whole-set estimator, AU threshold 0.01" + (f"; dotted: best epoch {best}" if best else ""))
    return fig
