"""Training configuration: one frozen dataclass whose fields are the declared options.

The fields are the general ones (config/general.py) and those every registered method declares next
to its code (config/declared.py); nothing is listed twice. Resolution order (later wins): defaults <
dataset preset < presets of the chosen model, flow and strategy < `--config` file < `--set
key=value` < explicit flags. Every value is type-checked where it comes from and the whole resolved
config is range-checked before anything is written (one line naming the option, exit 2). The
resolved config is saved flat as `config.json` in the run (docs/runs.md).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from duvae_cli.config.declared import Declared, declared
from duvae_cli.config.general import DATASET_PRESETS
from duvae_cli.errors import DuvaeError, UsageError
from duvae_cli.methods import REGULARIZERS, STRATEGIES
from duvae_cli.options import Option, either


# The other sources of a config (`duvae train` and `duvae sweep` take them as flags).
CONFIG_FILE = Option("config_file", Path, None, "JSON file of config fields (flat, as a run's config.json).",
                     flags=("--config",))
SETS = Option("sets", str, (), "Override a config field: key=value (docs/options.md lists them).", multiple=True,
              flags=("--set",))


def _to_dict(self) -> dict:
    return dataclasses.asdict(self)


def _short_hash(self) -> str:
    payload = json.dumps(self.to_dict(), sort_keys=True).encode()
    return hashlib.sha256(payload).hexdigest()[:8]


def _config_class(table: Declared) -> type:
    """A frozen dataclass: general fields at their defaults; a method's `always` options at their
    default; its other options None (filled with the chosen method's default by `resolve_config`)."""
    fields = [(name, (option.type | None) if table.nullable(name) else option.type,
               dataclasses.field(default=None if table.nullable(name) else option.default))
              for name, option in table.options.items()]
    cls = dataclasses.make_dataclass(
        "TrainConfig", fields, frozen=True,
        namespace={"to_dict": _to_dict, "short_hash": _short_hash,
                   "__doc__": "The resolved training options (one field per declared option)."})
    cls.__module__ = __name__  # pickles and prints as duvae_cli.config.resolve.TrainConfig
    return cls


TrainConfig = _config_class(declared())


def regularizer_name(model: str) -> str:
    """The registered regularizer of a model name: itself, or the one under a named flow model."""
    method = declared().method("model", model)
    return method.base or model if method is not None else model


def parse_set(items: list[str]) -> dict:
    """`key=value` strings (from `--set`) to a dict with values typed like the config field."""
    table = declared()
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in table.options:
            raise UsageError(f"--set {item!r}: expected key=value with key one of: {', '.join(table.options)}")
        try:
            out[key] = table.options[key].parse(raw, table.nullable(key))
        except ValueError as exc:
            raise UsageError(f"--set {key}={raw.strip()}: {exc}") from None
    return out


def typed_values(values: dict, source: str, error: type[DuvaeError] = UsageError) -> dict:
    """Check the type of every value (JSON, flags); `source` prefixes the message ("--config f.json: ").
    `error`: UsageError (exit 2) for what the user typed, DuvaeError (exit 1) for a run's own file."""
    table = declared()
    unknown = sorted(set(values) - set(table.options))
    if unknown:
        raise error(f"{source}unknown field(s) {', '.join(unknown)} (a method that is not registered? "
                         "see DUVAE_METHODS in docs/extending.md)")
    out = {}
    for key, value in values.items():
        option = table.options[key]
        try:
            out[key] = option.coerce(value, table.nullable(key))
        except ValueError as exc:
            raise error(f"{source}{key if source else option.label}: {exc}") from None
    return out


def load_config_file(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"--config {path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"--config {path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UsageError(f"--config {path}: expected a JSON object of config fields")
    return typed_values(data, f"--config {path}: ")


def resolve_config(dataset: str | None = None, model: str | None = None, flags: dict | None = None,
                   config_file: Path | None = None, sets: list[str] | None = None) -> TrainConfig:
    """Apply presets, then the config file, then `--set`, then explicit flags (None = unset). A
    dataset or model not given anywhere is the declared default of `--dataset` / `--model`."""
    table = declared()
    dataset = dataset or table.options["dataset"].default
    model = model or table.options["model"].default
    explicit = load_config_file(config_file) if config_file else {}
    explicit.update(parse_set(sets or []))
    explicit.update(typed_values({k: v for k, v in (flags or {}).items() if v is not None}, ""))
    dataset, model = explicit.get("dataset") or dataset, explicit.get("model") or model
    if table.method("model", model) is None:
        raise UsageError(f"--model {model!r}: choose one of: {', '.join(table.names('model'))}")
    values = preset_values(table, dataset, model, explicit)
    values.update(explicit)
    values.update(dataset=dataset, model=model)
    check_schedule_flags(flags or {}, values.get("anneal", table.options["anneal"].default))
    config = TrainConfig(**values)
    validate(config)
    return config


def preset_values(table: Declared, dataset: str, model: str, explicit: dict) -> dict:
    """The values before the user's: the dataset preset; the presets of every method's `always`
    options (they are in every config.json); the chosen model's option defaults and presets; then
    those of the chosen flow and strategy. A method's presets: "*" (every dataset), then `dataset`."""
    values = dict(DATASET_PRESETS.get(dataset, {}))
    for method in table.methods:
        own = {o.name for o in method.options if o.always}
        for scope in ("*", dataset):
            values.update({k: v for k, v in method.presets.get(scope, {}).items() if k in own})
    chosen = table.method("model", model)
    base = table.method("model", chosen.base) if chosen.base else chosen
    values.update({o.name: o.default for o in base.options if not o.always})
    _apply_presets(values, chosen, dataset)
    for kind in ("flow", "strategy"):
        name = explicit.get(kind, values.get(kind, table.options[kind].default))
        method = table.method(kind, name)
        if method is not None:
            values.update({o.name: o.default for o in method.options if not o.always})
            _apply_presets(values, method, dataset)
    return values


def check_schedule_flags(flags: dict, anneal: str) -> None:
    """Flags that the chosen KL schedule would ignore are usage errors: `--warm-up` belongs to the
    linear schedule, `--cycles` and `--cycle-ratio` to the cyclical one (values from presets, `--set`
    and `--config` are not refused: a run's config.json holds every field)."""
    given = {name for name, value in flags.items() if value is not None}
    if anneal == "cyclical" and "warm_up" in given:
        raise UsageError("--warm-up: the cyclical schedule does not use it (each cycle's rise is "
                         "--cycle-ratio of the cycle); drop --warm-up or use --anneal linear")
    ignored = sorted(given & {"cycles", "cycle_ratio"})
    if anneal == "linear" and ignored:
        raise UsageError(f"--{ignored[0].replace('_', '-')}: only the cyclical schedule uses it; add --anneal cyclical")


def _apply_presets(values: dict, method, dataset: str) -> None:
    for scope in ("*", dataset):
        values.update(method.presets.get(scope, {}))


def validate(config: TrainConfig) -> None:
    """Types and ranges of every field, then the rules that tie fields together. Raises UsageError."""
    table = declared()
    typed_values(config.to_dict(), "")
    check_ranges(config.to_dict())
    for ok, message in _cross_checks(config, table):
        if not ok:
            raise UsageError(message)


def check_ranges(values: dict) -> None:
    """UsageError naming the first field whose value is outside its declaration (range, choices);
    `train --resume` checks the fields it changes with it."""
    table = declared()
    for name, value in values.items():
        option = table.options[name]
        reason = option.problem(value)
        if reason:
            raise UsageError(f"{option.label} {value!r}: {reason}" if isinstance(value, str)
                             else f"{option.label} {value}: {reason}")


def _cross_checks(c: TrainConfig, table: Declared) -> list[tuple[bool, str]]:
    flows = ["none", *table.names("flow")]
    alias = table.method("model", c.model)
    strategy = STRATEGIES.get(c.strategy)
    method = REGULARIZERS.get(regularizer_name(c.model))  # the model's own limits, like the strategy's
    return [
        (method is None or method.check(c) is None, method and method.check(c)),
        (c.flow in flows, f"--flow {c.flow!r}: choose {either(flows)}"),
        (not alias.base or c.flow != "none",
         f"--model {c.model} is {alias.base} with an IAF posterior; --flow {c.flow} contradicts it "
         f"(use --model {alias.base})"),
        (strategy is not None, f"--strategy {c.strategy!r}: choose one of: {', '.join(table.names('strategy'))}"),
        (strategy is None or strategy.capabilities.mixed_precision or c.precision in ("fp32", "auto"),
         f"--strategy {c.strategy} runs in fp32 only; drop --precision {c.precision}"),
        (strategy is None or strategy.check(c) is None, strategy and strategy.check(c)),
        (c.device in ("auto", "cpu", "cuda") or (c.device.startswith("cuda:") and c.device[5:].isdigit()),
         f"--device {c.device!r}: choose auto, cpu, cuda or cuda:N"),
    ]
