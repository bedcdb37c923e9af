"""`duvae encode` and `duvae generate`: a trained run on new data (docs/use.md).

Thin commands over `duvae_cli.use` and `duvae_cli.api`; the `--data` options of evaluate and classify
live in commands/evaluate.py. Errors are raised as DuvaeError/UsageError and turned into one line by
`cli.main`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from duvae_cli.commands.common import JSON, LATEST, QUIET, RunArg, command
from duvae_cli.errors import UsageError
from duvae_cli.io import write_stdout
from duvae_cli.options import CHECKPOINT, DATA_ROOT, DEVICE, Option
from duvae_cli.use.familiar import INPUT_CHECKS, InputChecks
from duvae_cli.use.generate import DECODE_OPTIONS, GENERATE_OPTIONS

GRID_MOST = 32  # image reconstructions drawn in one grid
ENCODE_OPTIONS = (
    Option("out", Path, None, "Write .npy, .csv or .h5 (by extension); default: JSON lines on stdout."),
    Option("split", str, None, "Split of a dataset.h5 INPUT (default test)."),
    Option("name", str, None, "Name of the data (default: the file's name without .txt, .tsv, .text or .npz)."),
    CHECKPOINT, DEVICE, DATA_ROOT,
)
GENERATE_WHERE = (
    Option("split", str, None, "Split of a dataset.h5 --reconstruct file."),
    Option("limit", int, None, "Reconstruct only the first N examples of the file.", range="[1, 1000000000]",
           metavar="N"),
    Option("out", Path, None, "Image runs: the PNG grid (default RUN/figures/generate-MODE.png)."),
    CHECKPOINT, DEVICE, DATA_ROOT,
)


@command(ENCODE_OPTIONS, INPUT_CHECKS, (QUIET, JSON))
def encode(
    paths: Annotated[list[Path], typer.Argument(metavar="[RUN] INPUT",
                                                help="The run directory (default runs/latest) and "
                                                "a text file (plain or LABEL<TAB> lines; - for stdin), a "
                                                "prepared dataset.h5 or an image .npz.", show_default=False)],
    **values,
) -> None:
    """Posterior means and log-variances (and zT for flow runs) of new data, tokenized with the run's
    own vocabulary; reports the share of unknown words on stderr.

    Example: duvae encode runs/latest reviews.txt --out codes.npy
    """
    from duvae_cli.console import CliReporter, emit_json
    from duvae_cli.use.encode import encode_file

    run, input_path = _run_and_input(paths, "INPUT")
    out = values["out"]
    if values["json"] and out is None:
        raise UsageError("--json: without --out the rows already are JSON lines on stdout")
    summary = encode_file(run, input_path, out, values["split"], values["checkpoint"], values["device"],
                          CliReporter(values["quiet"]), values["name"], data_root=values["data_root"],
                          checks=InputChecks.from_flags(values))
    if out is not None:
        emit_json(summary) if values["json"] else typer.echo(str(out))


def _run_and_input(paths: list[Path], what: str) -> tuple[Path, Path]:
    if len(paths) == 1:
        return LATEST, paths[0]
    if len(paths) == 2:
        return paths[0], paths[1]
    raise UsageError(f"expected [RUN] {what} (got {len(paths)} arguments)")


@command(GENERATE_OPTIONS, DECODE_OPTIONS, GENERATE_WHERE, INPUT_CHECKS, (QUIET, JSON))
def generate(run: RunArg = LATEST, **values) -> None:
    """Reconstructions (input beside output), prior samples or an interpolation, as text on stdout
    (JSON lines with --json); image runs draw a PNG grid.

    Example: duvae generate runs/latest --reconstruct reviews.txt --limit 20
    """
    from duvae_cli.api import load
    from duvae_cli.console import CliReporter
    from duvae_cli.progress import note
    from duvae_cli.use.generate import DecodeOptions

    modes = [m for m in ("reconstruct", "sample", "interpolate") if values[m] is not None]
    if len(modes) != 1:
        raise UsageError("give exactly one of --reconstruct FILE, --sample N, --interpolate A B")
    if values["limit"] is not None and modes[0] != "reconstruct":
        raise UsageError("--limit: only with --reconstruct FILE")
    mode, options = modes[0], DecodeOptions.from_flags(values)
    model = load(run, values["checkpoint"], values["device"], values["data_root"], InputChecks.from_flags(values))
    model.reporter = reporter = CliReporter(values["quiet"])  # input notes and warnings on stderr
    for line in model.trained.data_notes:  # e.g. a moved run's data found elsewhere
        note(reporter, line)
    if model.kind == "image":
        return _image_grid(model, mode, values, options, reporter)
    if values["out"] is not None:
        raise UsageError("--out: text runs print to stdout (redirect it to a file)")
    if mode == "reconstruct":
        return _stream_reconstructions(model, values, options, reporter)
    if mode == "sample":
        rows = [{"index": i, "output": text} for i, text in enumerate(model.sample(values["sample"], **_kw(options)))]
    else:
        rows = _interpolation(model, values["interpolate"], values["steps"], options)
    write_stdout("".join(_row_text(row, mode, values["json"]) for row in rows))


def _kw(options) -> dict:
    return {"method": options.method, "beam": options.beam, "temperature": options.temperature,
            "max_length": options.max_length, "seed": options.seed}


def _stream_reconstructions(model, values: dict, options, reporter) -> None:
    """Rows on stdout as each chunk of inputs is decoded; a closed stdout (`| head`) ends it (cli.main)."""
    from duvae_cli.use.inputs import read_input

    data = model.data(read_input(values["reconstruct"], model.dataset, values["split"], limit=values["limit"]))
    lines = data.lines
    for indices, outputs in model.reconstructions(data, options, reporter=reporter):
        rows = [{"index": int(i), "line": None if lines is None else int(lines[i]),
                 "input": data.sentence_text(model.dataset, int(i)), "output": text, "decode": options.method}
                for i, text in zip(indices, outputs)]
        write_stdout("".join(_row_text(row, "reconstruct", values["json"]) for row in rows))


def _interpolation(model, ends: tuple[str, str], steps: int, options) -> list[dict]:
    import numpy as np

    outputs = model.interpolate(*ends, steps=steps, **_kw(options))  # notes the endpoints' unknown words
    return [{"step": k, "t": float(t), "output": text}
            for k, (t, text) in enumerate(zip(np.linspace(0.0, 1.0, steps), outputs))]


def _row_text(row: dict, mode: str, as_json: bool) -> str:
    if as_json:
        return json.dumps(row) + "\n"
    if mode == "reconstruct":
        where = f"line {row['line']}" if row["line"] is not None else f"#{row['index']}"
        return f"[{where}] input:  {row['input']}\n{' ' * (len(where) + 3)}output: {row['output']}\n"
    if mode == "interpolate":
        return f"{row['t']:.2f}  {row['output']}\n"
    return row["output"] + "\n"


def _image_grid(model, mode: str, values: dict, options, reporter) -> None:
    import numpy as np

    from duvae_cli.runs.layout import is_export
    from duvae_cli.use.inputs import from_images, read_input
    from duvae_cli.viz.figure import figure_format, save_figure, style
    from duvae_cli.viz.images import draw_panels

    if mode == "interpolate":
        raise UsageError("--interpolate: text runs only")
    if values["out"] is None and is_export(model.trained.run_dir):
        raise UsageError(f"{model.trained.run_dir}: an export, which stays as its author made it; name the grid "
                         "with --out")
    out = values["out"] or model.trained.run_dir / "figures" / f"generate-{mode}.png"
    figure_format(out)  # a bad extension fails before any sampling
    if mode == "reconstruct":
        data = read_input(values["reconstruct"], model.dataset, values["split"], limit=values["limit"])
        reporter.log(f"{data.source}: {len(data)} images")
        if len(data) > GRID_MOST:
            reporter.log(f"{data.source}: the grid shows the first {GRID_MOST} of {len(data)} images")
            data = from_images(data.split.images[:GRID_MOST], data.name, source=data.source)
        images = np.concatenate([part for _, part in model.reconstructions(data, options, reporter=reporter)])
        panels = [(f"{data.source}: inputs", data.split.images),
                  ("reconstructions: z = posterior mean, pixels sampled", images)]
    else:
        panels = [("prior samples: z ~ N(0, I), pixels sampled", model.sample(values["sample"], seed=options.seed))]
    title = (f"{model.trained.run_dir.name}: {mode} ({model.trained.checkpoint_name} "
             f"{model.trained.checkpoint_sha256[:12]}, seed {options.seed})")
    with style():
        save_figure(draw_panels(panels, title), out)
    typer.echo(str(out))

