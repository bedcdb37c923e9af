"""The command layer: commands loaded on demand (`duvae --help` and `duvae report` never import torch),
the one-line table of `duvae --help` equal to each command's docstring, every command's flags derived
from declared Options, and `duvae sweep` taking `duvae train`'s config flags as they are."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

from duvae_cli.commands import COMMANDS, load

REPO = Path(__file__).resolve().parents[1]

_MODULES = """
import sys
from duvae_cli.cli import main
try:
    main(sys.argv[1:])
except SystemExit as stop:
    code = stop.code
print(json.dumps({"code": code, "torch": "torch" in sys.modules, "commands": sorted(
    m for m in sys.modules if m.startswith("duvae_cli.commands."))}), file=sys.stderr)
"""


def _modules_after(*args: object, cwd: Path) -> dict:
    """Run `duvae ARGS` in a fresh interpreter; what it imported, from its last stderr line."""
    proc = subprocess.run([sys.executable, "-c", "import json\n" + _MODULES, *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)
    return json.loads(proc.stderr.strip().splitlines()[-1]) | {"stdout": proc.stdout}


def _hand_made_run(root: Path) -> Path:
    """A run directory as `duvae report` reads it: config.json and metrics.csv (no checkpoint)."""
    run = root / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"dataset": "yelp", "model": "du", "gamma": 0.5, "p": 0.8,
                                                 "latent_dim": 32, "seed": 1}))
    (run / "metrics.csv").write_text("run,dataset,model,split,metric,value,estimator,n_samples,seed,checkpoint,"
                                     "checkpoint_sha256\nr1,yelp,du,test,iw_nll,101.5,iw,500,0,best,abc\n")
    return run


def test_help_and_report_start_without_torch_and_import_only_their_command(tmp_path):
    listed = _modules_after("--help", cwd=tmp_path)
    assert listed["code"] == 0 and not listed["torch"] and listed["commands"] == []
    assert all(name in listed["stdout"] for name, entry in COMMANDS.items() if not entry.hidden)
    assert "sweep-task" not in listed["stdout"]

    shown = _modules_after("report", "--help", cwd=tmp_path)
    assert shown["code"] == 0 and not shown["torch"] and shown["commands"] == ["duvae_cli.commands.common",
                                                                            "duvae_cli.commands.report"]
    run = _hand_made_run(tmp_path)
    table = _modules_after("report", run, "--format", "csv", cwd=tmp_path)
    assert table["code"] == 0 and not table["torch"], table
    assert "101.5" in table["stdout"]


def test_the_help_table_is_each_commands_docstring_and_every_help_shows_an_example(duvae):
    for name, entry in COMMANDS.items():
        doc = inspect.getdoc(load(name))
        assert " ".join(doc.split("\n\n")[0].split()) == entry.help, name
        shown = duvae(name, "--help")
        assert shown.code == 0 and any(line.strip().startswith("Example:") for line in shown.stdout.splitlines())


def test_an_unknown_command_is_one_line_with_a_suggestion(duvae):
    result = duvae("evalute")
    assert result.code == 2 and result.stderr.strip().splitlines() == [
        "duvae: error: No such command 'evalute'. Did you mean 'evaluate'?"]


def test_every_flag_of_every_command_is_a_declared_option():
    from duvae_cli.cli import _command

    for name in COMMANDS:
        function = load(name)
        declared = {o.name for o in getattr(function, "options", ())}
        arguments = set(inspect.signature(function).parameters) - declared
        for param in _command(name).params:
            assert param.name in declared or param.name in arguments or param.name == "help", (name, param.name)
            if param.name in declared:
                assert param.param_type_name == "option", (name, param.name)


def test_sweep_takes_every_train_config_flag_with_its_name_type_help_and_check(duvae, tmp_path):
    from duvae_cli.cli import _command
    from duvae_cli.commands.common import config_options

    train = {p.name: p for p in _command("train").params}
    sweep = {p.name: p for p in _command("sweep").params}
    for option in config_options():
        a, b = train[option.name], sweep[option.name]
        same = ("opts", "help", "default", "multiple", "nargs")
        assert a.type_descriptor.annotation == b.type_descriptor.annotation, option.name
        assert [getattr(a, k) for k in same] == [getattr(b, k) for k in same], option.name
    for flag, value in (("--precision", "fp8"), ("--seed", "-1"), ("--gamma", "0"), ("--epochs", "0")):
        trained = duvae("train", flag, value, "--run-dir", tmp_path / "run")
        swept = duvae("sweep", "--grid", "p=1,0.8", flag, value, "--root", tmp_path / "sweep")
        assert trained.code == swept.code == 2 and trained.stderr == swept.stderr, (flag, swept.stderr)
    assert not (tmp_path / "run").exists() and not (tmp_path / "sweep").exists()


@pytest.mark.parametrize("args, message", [
    (("sweep", "--grid", "gamma=0.5", "--workers", "0"), "--workers 0: must be >= 1"),
    (("sweep", "--grid", "gamma=0.5", "--slurm-cpus", "0"), "--slurm-cpus 0: must be >= 1"),
    (("sweep", "--grid", "gamma=0.5", "--launcher", "pbs"), "--launcher 'pbs': choose local or slurm"),
    (("sweep", "--grid", "gamma=0.5", "--slurm-time", "soon"), "--slurm-time 'soon': give minutes"),
    (("sweep",), "--grid: give at least one"),
    (("evaluate", "runs/none", "--memory-budget", "0"), "--memory-budget '0': must be > 0"),
    (("report", "runs/none", "--checkpoint", "final"), "--checkpoint 'final': choose best or last"),
    (("visualize", "runs/none", "--kind", "pie"), "--kind 'pie': choose latent, curves, dims, samples or grid"),
    (("classify", "runs/none", "--per-class", "16"), "--per-class 16: must be in [1, 15]"),
    (("prepare", "text", "--vocab-size", "4"), "--vocab-size 4: must be >= 5"),
])
def test_a_value_outside_its_declaration_is_one_line_before_anything_runs(duvae, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = duvae(*args)
    lines = result.stderr.strip().splitlines()
    assert result.code == 2 and len(lines) == 1 and lines[0].startswith("duvae: error: ") and message in lines[0]
    assert not any(tmp_path.iterdir())
