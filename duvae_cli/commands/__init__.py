"""The `duvae` commands, one module per group; each command translates flags into library calls and
prints the result (cli.py turns errors into one line and an exit code).

`COMMANDS` says where each command lives and holds its one line for `duvae --help`, so that the
list is printed without importing any command (and so torch): a command's module is imported only
when that command runs or shows its own help. A test checks each line against the first paragraph
of the command's docstring.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Entry:
    module: str  # duvae_cli.commands.<module>
    function: str
    help: str  # the docstring's first paragraph, on one line
    hidden: bool = False


COMMANDS: dict[str, Entry] = {
    "prepare": Entry("prepare", "prepare", "Turn a raw dataset into OUT/NAME/dataset.h5 and print a summary."),
    "train": Entry("train", "train", "Train a VAE; with no options, DU-VAE on the synthetic dataset (prepared "
                   "when absent)."),
    "evaluate": Entry("evaluate", "evaluate", "IW-NLL, PPL, ELBO, KL, MI, AU, MPD and CE of a trained run; writes "
                      "metrics.h5 and metrics.csv."),
    "classify": Entry("evaluate", "classify", "Linear-probe accuracy of the posterior means per label budget "
                      "(Omniglot: one probe per alphabet per --per-class K); writes probe.csv and metrics.h5 and "
                      "saves the probes; --predict applies one."),
    "visualize": Entry("figures", "visualize", "Figures (and text samples) drawn only from saved run artifacts; "
                       "prints the written paths."),
    "report": Entry("report", "report", "One row per model and evaluation settings (runs grouped by dataset, "
                    "model and config; mean ± std over seeds): NLL, KL, MI, AU from metrics.csv and probe "
                    "accuracies per label budget from probe.csv, with K, examples and a `stale` column."),
    "sweep": Entry("sweep", "sweep", "Train a grid of runs (resumable: finished points are skipped, interrupted "
                   "ones resumed), then print the sweep's report and draw its Figure-2 grid."),
    "encode": Entry("use", "encode", "Posterior means and log-variances (and zT for flow runs) of new data, "
                    "tokenized with the run's own vocabulary; reports the share of unknown words on stderr."),
    "generate": Entry("use", "generate", "Reconstructions (input beside output), prior samples or an "
                      "interpolation, as text on stdout (JSON lines with --json); image runs draw a PNG grid."),
    "export": Entry("share", "export", "A self-contained, Hub-style folder of a run: model.safetensors, config.json, "
                    "vocabulary, data fingerprints, metrics with their provenance and a README.md model card "
                    "listing every file's sha256."),
    "migrate": Entry("share", "migrate", "Convert a run's pickled checkpoints to safetensors with PyTorch's "
                     "restricted unpickler (nothing in them is executed); its stored numbers stay current."),
    # one SLURM array task of a sweep (sweep/slurm.py): the job script calls it
    "sweep-task": Entry("sweep", "sweep_task", "One SLURM array task of a sweep: its point's commands (hidden: "
                        "the job script calls it).", hidden=True),
}


def load(name: str) -> Callable:
    """The function of command `name` (imports its module)."""
    entry = COMMANDS[name]
    return getattr(importlib.import_module(f"duvae_cli.commands.{entry.module}"), entry.function)
