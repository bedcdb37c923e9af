"""Declared options: validation of every source (flags, --config, --set), the derived --help, and
the declarations themselves (defaults within their ranges, shared options agreeing)."""

from __future__ import annotations

import json

import pytest

from duvae_cli.errors import UsageError
from duvae_cli.options import Option, Range
from duvae_cli.config.resolve import TrainConfig, resolve_config
from duvae_cli.config.declared import declared, help_text


@pytest.mark.parametrize("args, option", [
    (["--beta", "-5"], "--beta"),
    (["--fb-lambda", "-2"], "--fb-lambda"),
    (["--set", "clip=-1"], "clip"),
    (["--config", {"lr": "fast"}], "lr"),
    (["--config", {"hidden_dim": 16.7}], "hidden_dim"),
    (["--delta", "-1"], "--delta"),
    (["--seed", "-1"], "--seed"),
    (["--set", "dropout_in=2"], "dropout_in"),
    (["--lr", "nan"], "--lr"),
    (["--gamma", "0"], "--gamma"),
    (["--set", "batch_size=1"], "--batch-size 1: must be in [2, 1000000]"),
    (["--config", {"latent_dim": True}], "latent_dim"),
    (["--config", {"flow_depth": 0}], "--flow-depth 0"),
    (["--set", "svi_lr=abc"], "svi_lr"),
])
def test_bad_values_are_one_line_naming_the_option_exit_2(duvae, tmp_path, args, option):
    if isinstance(args[-1], dict):
        path = tmp_path / "config.json"
        path.write_text(json.dumps(args[-1]))
        args = [args[0], path]
    result = duvae("train", *args, "--run-dir", tmp_path / "run", "--quiet")
    assert result.code == 2, result
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("duvae: error: ")
    assert option in result.stderr
    assert not (tmp_path / "run").exists()  # validated before anything is written


@pytest.mark.parametrize("text, inside, outside", [
    ("> 0", [1e-9, 3.0], [0.0, -1.0]), (">= 0", [0.0, 2.0], [-1e-9]), ("(0, 1]", [1.0, 0.5], [0.0, 1.1]),
    ("[0, 1)", [0.0, 0.99], [1.0, -0.1]), ("< 1", [0.0, -5.0], [1.0]),
])
def test_ranges_are_the_declared_intervals(text, inside, outside):
    bounds = Range.parse(text)
    assert all(bounds.contains(v) for v in inside) and not any(bounds.contains(v) for v in outside)


def test_every_default_and_preset_satisfies_its_declaration():
    table = declared()
    for name, option in table.options.items():
        for value in [o.default for o in table.variants.get(name, {name: option}).values()]:
            assert option.problem(option.coerce(value, nullable=False)) is None, name
    for method in table.methods:
        for scope, values in method.presets.items():
            for key, value in values.items():
                option = table.options[key]  # a preset names a declared field
                assert option.problem(option.coerce(value, table.nullable(key))) is None, (method.name, scope, key)


def test_config_fields_are_the_declarations_and_method_options_are_null_unless_chosen():
    assert set(TrainConfig.__dataclass_fields__) == set(declared().options)
    du, vae = resolve_config("yelp", "du"), resolve_config("yelp", "vae")
    assert (du.gamma, du.p) == (0.5, 0.8) and (vae.gamma, vae.p, vae.beta) == (None, None, None)
    assert resolve_config("omniglot", "vae").agg_window == 10  # an `always` option's preset: every run
    assert resolve_config("yelp", "beta").kl_start == 1.0  # a method's preset of a general field


def test_sources_override_in_order(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"gamma": 0.7, "p": 0.6, "model": "du"}))
    config = resolve_config("yelp", "vae", {"p": 0.9}, path, ["gamma=0.65"])
    assert (config.model, config.gamma, config.p) == ("du", 0.65, 0.9)


def test_help_line_names_methods_range_and_default():
    table = declared()
    assert help_text(table.options["p"]) == ("du: Keep probability of the variance dropout. "
                                            "(0 < value <= 1; default 0.8)")
    assert "default 0.6 (bn), 0.5 (du)" in help_text(table.options["gamma"])


def test_cli_help_lists_every_flag_option(duvae):
    result = duvae("train", "--help")
    for option in declared().options.values():
        assert (option.flag_name in result.stdout) == option.flag, option.name


def test_declarations_are_checked_when_registered():
    from duvae_cli.options import check_declarations
    from duvae_cli.config.declared import _check_agree

    gamma = declared().options["gamma"]
    with pytest.raises(ValueError, match="range"):  # a second `gamma` must keep bn/du's range
        _check_agree(gamma, Option("gamma", float, 1.0, "x", range=">= 0"), "mine")
    with pytest.raises(ValueError, match="default -1.0: must be > 0"):
        check_declarations((Option("bad", float, -1.0, "x", range="> 0"),), "mine")


def test_library_resolution_refuses_wrong_types():
    with pytest.raises(UsageError, match="--epochs: expected an integer"):
        resolve_config("yelp", "du", {"epochs": 2.5})


def test_docs_options_table_is_generated_from_the_declarations():
    from pathlib import Path

    from duvae_cli.commands.options_doc import options_markdown

    path = Path(__file__).resolve().parents[1] / "docs" / "options.md"
    assert path.read_text(encoding="utf-8") == options_markdown(), (
        "docs/options.md is stale: python -m duvae_cli.commands.options_doc > docs/options.md")


@pytest.mark.parametrize("model, values, attribute", [
    ("du", {"p": 0.6}, "p"), ("beta", {"beta": 0.3}, "beta"), ("fb", {"fb_lambda": 0.2}, "fb_lambda"),
    ("delta", {"delta": 0.2}, "delta"), ("mae", {"mae_eta": 1.5}, "mae_eta"),
])
def test_the_regularizer_gets_its_declared_options_from_the_config(model, values, attribute):
    from duvae_cli.config.build import build_text_model

    config = resolve_config("yelp", model, {"embed_dim": 4, "hidden_dim": 4, "latent_dim": 2, **values})
    regularizer = build_text_model(config, 12).regularizer
    assert getattr(regularizer, attribute) == next(iter(values.values()))


def test_an_options_record_checks_and_converts_each_value_against_its_declaration():
    import dataclasses

    from duvae_cli.metrics.evaluate import EvalOptions
    from duvae_cli.probe.classify import ClassifyOptions
    from duvae_cli.sweep.slurm import SlurmOptions

    assert EvalOptions().memory_budget == 2**30 and EvalOptions(memory_budget="1GB").memory_budget == 10**9
    assert EvalOptions(memory_budget=5000).memory_budget == 5000  # bytes from Python stay bytes
    assert ClassifyOptions(budgets=[100, 500]).budgets == (100, 500)  # a list given: a tuple kept
    assert SlurmOptions(time_min="1:30").time_min == 90 and SlurmOptions(time_min=90).time_min == 90
    for build, message in [(lambda: EvalOptions(iw_samples=0), "--iw-samples 0: must be in [1, 100000]"),
                           (lambda: EvalOptions(iw_samples=2.5), "--iw-samples: expected an integer, got 2.5"),
                           (lambda: EvalOptions(memory_budget="lots"), "--memory-budget 'lots': expected a size"),
                           (lambda: EvalOptions(mi_estimator="kde"), "--mi-estimator 'kde': choose whole or batch"),
                           (lambda: ClassifyOptions(budgets=(100, 0)), "--labels 0: must be in"),
                           (lambda: dataclasses.replace(EvalOptions(), seed=-1), "--seed -1: must be in")]:
        with pytest.raises(UsageError) as refused:
            build()
        assert str(refused.value).startswith(message)
    flags = {"iw_samples": 7, "examples": None, "split": "test"}  # a command's values: None = not given
    assert EvalOptions.from_flags(flags) == EvalOptions(iw_samples=7)


def test_defaults_are_declared_once():
    import inspect
    from pathlib import Path

    from duvae_cli.api import Model
    from duvae_cli.metrics.evaluate import EVAL_OPTIONS, IW_SAMPLES
    from duvae_cli.options import DEFAULT_SEED

    assert declared().options["seed"].default == DEFAULT_SEED
    assert {o.name: o.default for o in EVAL_OPTIONS}["iw_samples"] == IW_SAMPLES
    score = {k: p.default for k, p in inspect.signature(Model.score).parameters.items()}
    assert (score["iw_samples"], score["seed"]) == (IW_SAMPLES, DEFAULT_SEED)
    package = Path(__file__).resolve().parents[1] / "duvae_cli"
    written = [str(p) for p in package.rglob("*.py") if str(DEFAULT_SEED) in p.read_text()]
    assert [Path(p).relative_to(package).as_posix() for p in written] == ["options/shared.py"]



def test_model_sizes_are_flags_of_train_and_set_still_sets_them(duvae, tmp_path):
    """`--hidden-dim` and `--embed-dim` (issue 32) as `--set hidden_dim=...` always did."""
    from toyruns import make_toy_data, toy_sets

    pairs = toy_sets(make_toy_data(tmp_path / "data"))
    sets = [a for value in pairs[1::2] if not value.startswith(("hidden_dim=", "embed_dim=")) for a in ("--set", value)]
    flags = duvae("train", "--dataset", "toy", "--epochs", "1", *sets, "--hidden-dim", "12", "--embed-dim", "6",
                  "--run-dir", tmp_path / "a", "-q")
    assert flags.code == 0, flags.stderr
    assert {k: json.loads((tmp_path / "a" / "config.json").read_text())[k] for k in ("hidden_dim", "embed_dim")} \
        == {"hidden_dim": 12, "embed_dim": 6}
    set_ = duvae("train", "--dataset", "toy", "--epochs", "1", *sets, "--set", "hidden_dim=10", "--set", "embed_dim=5",
                 "--run-dir", tmp_path / "b", "-q")
    assert set_.code == 0 and json.loads((tmp_path / "b" / "config.json").read_text())["hidden_dim"] == 10
    bad = duvae("train", "--hidden-dim", "0", "--run-dir", tmp_path / "c")
    assert bad.code == 2 and "--hidden-dim 0: must be in [1, 16384]" in bad.stderr
