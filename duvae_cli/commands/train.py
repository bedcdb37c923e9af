"""`duvae train`: its config flags are derived from the declared options (duvae_cli/options.py), so a
new method's options appear here without touching this file; the rest are the run's own flags."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Optional

import typer

from duvae_cli.commands.common import Json, LogOption, Quiet, join_torchrun
from duvae_cli.errors import UsageError

# The flags that are not config fields: (name, annotation, default).
_RUN_FLAGS = [
    ("config", Annotated[Optional[Path], typer.Option(help="JSON file of config fields (flat, as a run's "
                                                      "config.json).")], None),
    ("set_", Annotated[Optional[list[str]], typer.Option("--set", help="Override a config field: key=value "
                                                         "(docs/options.md lists them).")], None),
    ("run_dir", Annotated[Optional[Path], typer.Option(help="Run directory (default runs/<generated>).")], None),
    ("resume", Annotated[Optional[Path], typer.Option(help="Continue this run from its last checkpoint.")], None),
    ("log", LogOption, None),
    ("log_every", Annotated[Optional[int], typer.Option(help="Log the per-step values every N optimizer steps "
                                                         "(default 10; --resume: the run's own).")], None),
    ("quiet", Quiet, False),
    ("json", Json, False),
]
_PANELS = {"model": "Model options (--model)", "flow": "Flow options (--flow)",
           "strategy": "Strategy options (--strategy)"}


def train(**values) -> None:
    """Train a VAE; with no options, DU-VAE on the synthetic dataset (prepared when absent).

    Example: duvae train --dataset yelp --gamma 0.5 --p 0.8
    """
    from duvae_cli.console import CliReporter
    from duvae_cli.config.resolve import resolve_config
    from duvae_cli.train.session import resume_run, start_run

    config, set_, run_dir, resume = (values.pop(k) for k in ("config", "set_", "run_dir", "resume"))
    quiet, as_json = values.pop("quiet"), values.pop("json")
    log, log_every = values.pop("log"), values.pop("log_every")
    flags = values  # config fields; None = not given
    here = join_torchrun()  # a world of one outside torchrun; only rank 0 prints
    reporter = CliReporter(quiet or not here.is_main, notes=here.is_main)
    if resume is not None:
        fixed = [k for k, v in flags.items() if v is not None and k not in ("epochs", "device")]
        if fixed or config or set_ or run_dir:
            raise UsageError("--resume continues a run with its saved config; only --epochs and "
                             f"--device may change (got {', '.join(fixed) or '--config/--set/--run-dir'})")
        done = resume_run(resume, epochs=flags.get("epochs"), device=flags.get("device"), reporter=reporter,
                          log=log, log_every=log_every)
    else:
        resolved = resolve_config("synthetic", "du", flags, config, set_)
        done = start_run(resolved, run_dir=run_dir, reporter=reporter, log=log, log_every=log_every)
    if here.is_main:
        _print_run(done, as_json)


def _config_parameters() -> list[inspect.Parameter]:
    """One `--flag` per declared option with `flag=True`, typed, with its derived help line."""
    from duvae_cli.config.declared import declared, help_text

    table = declared()
    params = []
    for name, option in table.options.items():
        if not option.flag:
            continue
        owners = table.variants.get(name)
        kind = next((m.kind for m in table.methods if owners and m.name in owners), None)
        info = typer.Option(option.flag_name, help=help_text(option, table), rich_help_panel=_PANELS.get(kind))
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                        annotation=Annotated[Optional[option.type], info]))
    return params


def build_train_command():
    """`train` with a signature Typer reads: the derived config flags, then the run's own flags."""
    run = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
           for name, annotation, default in _RUN_FLAGS]
    train.__signature__ = inspect.Signature([*_config_parameters(), *run])
    train.__annotations__ = {}
    return train


def _print_run(run_dir: Path, as_json: bool) -> None:
    from duvae_cli.console import emit_json, print_table
    from duvae_cli.runs.run import read_run_summary

    summary = read_run_summary(run_dir)
    if as_json:
        emit_json(summary)
    else:
        print_table(f"run {summary['run_dir']}", ["metric", "value"], [[k, v] for k, v in summary["final"].items()])
