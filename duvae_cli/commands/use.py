"""`duvae encode` and `duvae generate`: a trained run on new data (docs/use.md).

Thin commands over `duvae_cli.use` and `duvae_cli.api`; `register(app)` adds the first two to the
Typer app (cli.py); the `--data` options live in commands/evaluate.py. Errors are raised as DuvaeError/UsageError and turned into one line by `cli.main`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from duvae_cli.commands.common import DataRoot, Json, Quiet
from duvae_cli.errors import UsageError

Checkpoint = Annotated[str, typer.Option(help="best or last.")]
Device = Annotated[str, typer.Option(help="auto, cpu or cuda.")]
LATEST = Path("runs/latest")
GRID_MOST = 32  # image reconstructions drawn in one grid


def encode(
    paths: Annotated[list[Path], typer.Argument(metavar="[RUN] INPUT",
                                                help="The run directory (default runs/latest) and "
                                                "a text file (plain or LABEL<TAB> lines), a prepared "
                                                "dataset.h5 or an image .npz.", show_default=False)],
    out: Annotated[Optional[Path], typer.Option(help="Write .npy, .csv or .h5 (by extension); default: JSON "
                                                "lines on stdout.")] = None,
    split: Annotated[Optional[str], typer.Option(help="Split of a dataset.h5 INPUT (default test).")] = None,
    name: Annotated[Optional[str], typer.Option(help="Name of the data (default: the file's stem).")] = None,
    checkpoint: Checkpoint = "best",
    device: Device = "auto",
    data_root: DataRoot = None,
    quiet: Quiet = False,
    json_out: Json = False,
) -> None:
    """Posterior means and log-variances (and zT for flow runs) of new data, tokenized with the run's
    own vocabulary; reports the share of <unk> tokens on stderr.

    Example: duvae encode runs/latest reviews.txt --out codes.npy
    """
    from duvae_cli.console import CliReporter, emit_json
    from duvae_cli.use.encode import encode_file

    run, input_path = _run_and_input(paths, "INPUT")
    if json_out and out is None:
        raise UsageError("--json: without --out the rows already are JSON lines on stdout")
    summary = encode_file(run, input_path, out, split, checkpoint, device, CliReporter(quiet), name,
                          data_root=data_root)
    if out is not None:
        emit_json(summary) if json_out else typer.echo(str(out))


def _run_and_input(paths: list[Path], what: str) -> tuple[Path, Path]:
    if len(paths) == 1:
        return LATEST, paths[0]
    if len(paths) == 2:
        return paths[0], paths[1]
    raise UsageError(f"expected [RUN] {what} (got {len(paths)} arguments)")


def generate(
    run: Annotated[Path, typer.Argument(help="Run directory (default: runs/latest).")] = LATEST,
    reconstruct: Annotated[Optional[Path], typer.Option(help="Reconstruct the examples of this file "
                                                        "(text, dataset.h5 with --split, or .npz).")] = None,
    sample: Annotated[Optional[int], typer.Option(help="Decode N codes from the prior N(0, I).")] = None,
    interpolate: Annotated[Optional[tuple[str, str]], typer.Option(
        help="Two sentences: decode --steps codes on the line between their posterior means.")] = None,
    steps: Annotated[int, typer.Option(help="interpolate: points, both endpoints included.")] = 5,
    decode: Annotated[str, typer.Option(help="greedy, beam or sample.")] = "greedy",
    beam: Annotated[int, typer.Option(help="beam: width.")] = 5,
    temperature: Annotated[float, typer.Option(help="sample: softmax temperature.")] = 1.0,
    max_length: Annotated[Optional[int], typer.Option(help="Most words per sentence (default: the run's "
                                                      "longest sentence + 5).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of prior codes, word sampling and pixel sampling.")] = 783435,
    split: Annotated[Optional[str], typer.Option(help="Split of a dataset.h5 --reconstruct file.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Image runs: the PNG grid (default "
                                                "RUN/figures/generate-MODE.png).")] = None,
    checkpoint: Checkpoint = "best",
    device: Device = "auto",
    data_root: DataRoot = None,
    quiet: Quiet = False,
    json_out: Json = False,
) -> None:
    """Reconstructions (input beside output), prior samples or an interpolation, as text on stdout
    (JSON lines with --json); image runs draw a PNG grid.

    Example: duvae generate runs/latest --interpolate "the food was great" "the service was slow" --steps 5
    """
    from duvae_cli.api import load
    from duvae_cli.console import CliReporter
    from duvae_cli.progress import note
    from duvae_cli.use.generate import DecodeOptions

    modes = [m for m, v in (("reconstruct", reconstruct), ("sample", sample), ("interpolate", interpolate))
             if v is not None]
    if len(modes) != 1:
        raise UsageError("give exactly one of --reconstruct FILE, --sample N, --interpolate A B")
    options = DecodeOptions(decode, beam, temperature, max_length, seed)
    model = load(run, checkpoint, device, data_root)
    reporter = CliReporter(quiet)
    for line in model.trained.data_notes:  # e.g. a moved run's data found elsewhere
        note(reporter, line)
    if model.kind == "image":
        return _image_grid(model, modes[0], reconstruct, sample, split, options, out, reporter)
    if out is not None:
        raise UsageError("--out: text runs print to stdout (redirect it to a file)")
    if modes[0] == "reconstruct":
        rows = _reconstructions(model, reconstruct, split, options, reporter)
    elif modes[0] == "sample":
        rows = [{"index": i, "output": text} for i, text in enumerate(model.sample(sample, **_kw(options)))]
    else:
        rows = _interpolation(model, interpolate, steps, options, reporter)
    _print_rows(rows, modes[0], json_out)


def _kw(options) -> dict:
    return {"method": options.method, "beam": options.beam, "temperature": options.temperature,
            "max_length": options.max_length, "seed": options.seed}


def _reconstructions(model, path: Path, split, options, reporter) -> list[dict]:
    from duvae_cli.use.inputs import read_input
    from duvae_cli.use.newdata import log_input

    data = read_input(path, model.dataset, split)
    log_input(data, reporter)
    outputs = model.reconstruct(data, **_kw(options))
    lines = data.lines if data.lines is not None else [None] * len(data)
    return [{"index": i, "line": None if lines[i] is None else int(lines[i]),
             "input": data.sentence_text(model.dataset, i), "output": text, "decode": options.method}
            for i, text in enumerate(outputs)]


def _interpolation(model, ends: tuple[str, str], steps: int, options, reporter) -> list[dict]:
    import numpy as np

    data = model.data(list(ends))
    if data.n_unk:
        reporter.log(f"--interpolate: {data.n_unk} of {data.n_tokens} words are outside the run's vocabulary "
                     "(read as <unk>)")
    outputs = model.interpolate(*ends, steps=steps, **_kw(options))
    return [{"step": k, "t": float(t), "output": text}
            for k, (t, text) in enumerate(zip(np.linspace(0.0, 1.0, steps), outputs))]


def _print_rows(rows: list[dict], mode: str, as_json: bool) -> None:
    for row in rows:
        if as_json:
            sys.stdout.write(json.dumps(row) + "\n")
        elif mode == "reconstruct":
            where = f"line {row['line']}" if row["line"] is not None else f"#{row['index']}"
            sys.stdout.write(f"[{where}] input:  {row['input']}\n{' ' * (len(where) + 3)}output: {row['output']}\n")
        elif mode == "interpolate":
            sys.stdout.write(f"{row['t']:.2f}  {row['output']}\n")
        else:
            sys.stdout.write(row["output"] + "\n")


def _image_grid(model, mode: str, path, n, split, options, out, reporter) -> None:
    from duvae_cli.use.inputs import from_images, read_input
    from duvae_cli.use.newdata import log_input
    from duvae_cli.viz.figure import figure_format, save_figure, style
    from duvae_cli.viz.images import draw_panels

    if mode == "interpolate":
        raise UsageError("--interpolate: text runs only")
    out = out or model.trained.run_dir / "figures" / f"generate-{mode}.png"
    figure_format(out)  # a bad extension fails before any sampling
    if mode == "reconstruct":
        data = read_input(path, model.dataset, split)
        log_input(data, reporter)
        if len(data) > GRID_MOST:
            reporter.log(f"{data.source}: the grid shows the first {GRID_MOST} of {len(data)} images")
            data = from_images(data.split.images[:GRID_MOST], data.name, source=data.source)
        panels = [(f"{data.source}: inputs", data.split.images),
                  ("reconstructions: z = posterior mean, pixels sampled", model.reconstruct(data, seed=options.seed))]
    else:
        panels = [("prior samples: z ~ N(0, I), pixels sampled", model.sample(n, seed=options.seed))]
    title = (f"{model.trained.run_dir.name}: {mode} ({model.trained.checkpoint.stem} "
             f"{model.trained.checkpoint_sha256[:12]}, seed {options.seed})")
    with style():
        save_figure(draw_panels(panels, title), out)
    typer.echo(str(out))


def register(app: typer.Typer) -> None:
    """Add `encode` and `generate` to the `duvae` app."""
    app.command()(encode)
    app.command()(generate)
