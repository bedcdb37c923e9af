"""`duvae train`: its config flags are derived from the declared options (duvae_cli/options.py), so a
new method's options appear here without touching this file; the rest are the run's own flags."""

from __future__ import annotations

from pathlib import Path

from duvae_cli.commands.common import JSON, QUIET, command, config_options, join_torchrun
from duvae_cli.config.resolve import CONFIG_FILE, SETS
from duvae_cli.errors import UsageError
from duvae_cli.tracking import LOG, LOG_EVERY
from duvae_cli.train.session import RESUME, RUN_DIR

RUN_OPTIONS = (CONFIG_FILE, SETS, RUN_DIR, RESUME, LOG, LOG_EVERY, QUIET, JSON)  # not config fields


@command(config_options(), RUN_OPTIONS)
def train(**values) -> None:
    """Train a VAE; with no options, DU-VAE on the synthetic dataset (prepared when absent).

    Example: duvae train --dataset yelp --gamma 0.5 --p 0.8
    """
    from duvae_cli.config.resolve import resolve_config
    from duvae_cli.console import CliReporter
    from duvae_cli.train.session import resume_run, start_run

    run = {option.name: values.pop(option.name) for option in RUN_OPTIONS}
    flags = values  # config fields; None = not given
    here = join_torchrun()  # a world of one outside torchrun; only rank 0 prints
    reporter = CliReporter(run["quiet"] or not here.is_main, notes=here.is_main)
    tracking = dict(log=run["log"], log_every=run["log_every"])
    if run["resume"] is not None:
        fixed = [k for k, v in flags.items() if v is not None and k not in ("epochs", "device")]
        if fixed or run["config_file"] or run["sets"] or run["run_dir"]:
            raise UsageError("--resume continues a run with its saved config; only --epochs and "
                             f"--device may change (got {', '.join(fixed) or '--config/--set/--run-dir'})")
        done = resume_run(run["resume"], epochs=flags.get("epochs"), device=flags.get("device"), reporter=reporter,
                          **tracking)
    else:
        resolved = resolve_config(flags=flags, config_file=run["config_file"], sets=run["sets"])
        done = start_run(resolved, run_dir=run["run_dir"], reporter=reporter, **tracking)
    if here.is_main:
        _print_run(done, run["json"])


def _print_run(run_dir: Path, as_json: bool) -> None:
    from duvae_cli.console import emit_json, print_table
    from duvae_cli.runs.run import read_run_summary

    summary = read_run_summary(run_dir)
    if as_json:
        emit_json(summary)
    else:
        print_table(f"run {summary['run_dir']}", ["metric", "value"], [[k, v] for k, v in summary["final"].items()])
