"""The registry of methods: regularizers (`--model`), flows (`--flow`), named flow models
(`--model du-iaf`, ...) and training strategies (`--strategy`), each declared in its own file of this
package, with its facts as class attributes:

- `options`: the config fields it takes (duvae_cli/options.py); its constructor's keyword defaults
  must equal them (checked here, at registration);
- `presets`: the values it sets per dataset ("*": every dataset), each a `Preset` naming its source;
- `capabilities`: what it supports (`Capabilities`: data kinds, multi-process training, bf16 parity
  as measured, with the measurement named).

Every module of this package registers itself when imported, and the package imports them all when
it is first imported (`discover`), as well as the modules named in the `DUVAE_METHODS` environment
variable (comma-separated, importable from `sys.path`), so a method can live in your own project.
Nothing outside a method's file names a method: the rest of duvae reads these facts.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
from dataclasses import dataclass, field

from duvae_cli.errors import UsageError
from duvae_cli.options import Option, check_declarations

PLUGINS_ENV = "DUVAE_METHODS"
DATA_KINDS = ("text", "image")


class Preset(dict):
    """Config values a method sets for one dataset scope, and where they come from (a paper table,
    a line of the reference code, "ours")."""

    def __init__(self, source: str, **values):
        super().__init__(values)
        if not source:
            raise ValueError("a preset names its source")
        self.source = source


@dataclass(frozen=True)
class Capabilities:
    """What a method supports. `bf16`: data kind -> the measurement that found bf16 training within
    seed noise of fp32 (`--precision auto` trains in bf16 only when every part of the model has one);
    `fp32_because`: data kind -> the measurement that found it outside (said when `auto` keeps fp32).
    `mixed_precision`: may run under bf16/fp16 at all (a strategy that is not, runs in fp32 only).
    `multi_process`: may train under torchrun. `evaluation_note`: a suffix of the estimator labels of
    its runs' evaluations (e.g. SA-VAE evaluated without its refinement: "-amortised")."""

    data: tuple[str, ...] = DATA_KINDS
    multi_process: bool = True
    mixed_precision: bool = True
    bf16: dict = field(default_factory=dict)
    fp32_because: dict = field(default_factory=dict)
    evaluation_note: str = ""


@dataclass(frozen=True)
class Method:
    """One registered method as the config sees it. kind: "model" (a regularizer or a named flow
    model), "flow" or "strategy"; `base`: a named flow model's regularizer."""

    kind: str
    name: str
    options: tuple[Option, ...]
    presets: dict
    help: str
    capabilities: Capabilities
    base: str = ""
    cls: type | None = None


REGULARIZERS: dict[str, type] = {}
FLOWS: dict[str, type] = {}
STRATEGIES: dict[str, type] = {}
FLOW_MODELS: dict[str, "FlowModel"] = {}
NO_FLOW = "none"


@dataclass(frozen=True)
class FlowModel:
    """A named model = a registered regularizer under a flow posterior; its own presets (those of the
    regularizer do not apply)."""

    regularizer: str
    flow: str
    presets: dict
    help: str


def _registrar(table: dict, kind: str):
    def register(name: str):
        def add(cls):
            check_method(cls, f"{kind} {name}")
            cls.name = name
            table[name] = cls
            return cls
        return add
    return register


register = _registrar(REGULARIZERS, "regularizer")
register_flow = _registrar(FLOWS, "flow")
register_strategy = _registrar(STRATEGIES, "strategy")


def register_flow_model(name: str, regularizer: str, flow: str, presets: dict, help: str) -> None:
    _check_presets(presets, f"model {name}")
    FLOW_MODELS[name] = FlowModel(regularizer, flow, presets, help)


def check_method(cls, owner: str) -> None:
    """A method's declarations hold: options valid, presets sourced, constructor defaults equal to
    the declared defaults (one source of truth: `duvae_cli.build_flow("iaf", 32)` builds the network
    the CLI trains)."""
    check_declarations(cls.options, owner)
    _check_presets(cls.presets, owner)
    if not isinstance(getattr(cls, "capabilities", None), Capabilities):
        raise ValueError(f"{owner}: declare `capabilities = Capabilities(...)`")
    signature = inspect.signature(cls.__init__).parameters
    for option in cls.options:
        parameter = signature.get(option.name)
        if parameter is not None and parameter.default is not inspect.Parameter.empty \
                and parameter.default != option.default:
            raise ValueError(f"{owner}: constructor default {option.name}={parameter.default!r} differs "
                             f"from the declared default {option.default!r}")


def _check_presets(presets: dict, owner: str) -> None:
    for scope, values in presets.items():
        if not isinstance(values, Preset):
            raise ValueError(f"{owner}: preset {scope!r} must be a Preset(source, ...) naming its source")


_discovered = False


def discover() -> None:
    """Import every method module of this package and of DUVAE_METHODS (idempotent)."""
    global _discovered
    if _discovered:
        return
    _discovered = True
    package = importlib.import_module("duvae_cli.methods")
    for info in pkgutil.iter_modules(package.__path__):
        if info.name != "registry" and not info.name.startswith("_"):
            importlib.import_module(f"duvae_cli.methods.{info.name}")
    for module in [m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(",") if m.strip()]:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise UsageError(f"{PLUGINS_ENV}: cannot import {module!r} ({exc})") from None


def registered() -> list[Method]:
    """Every method, in registration order: models (regularizers, then named flow models), flows,
    strategies."""
    discover()
    found = [_method("model", name, cls) for name, cls in REGULARIZERS.items()]
    found += [Method("model", name, (), alias.presets, alias.help, REGULARIZERS[alias.regularizer].capabilities,
                     alias.regularizer) for name, alias in FLOW_MODELS.items()]
    found += [_method("flow", name, cls) for name, cls in FLOWS.items()]
    found += [_method("strategy", name, cls) for name, cls in STRATEGIES.items()]
    return found


def _method(kind: str, name: str, cls) -> Method:
    return Method(kind, name, cls.options, cls.presets, _first_line(cls), cls.capabilities, cls=cls)


def _first_line(cls) -> str:
    return " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())


def _constructor_values(cls, latent_dim: int, options: dict) -> dict:
    accepted = inspect.signature(cls.__init__).parameters
    return {k: v for k, v in options.items() if k in accepted and k != "latent_dim" and v is not None}


def build_regularizer(name: str, latent_dim: int, **options):
    """A registered regularizer, given the options its constructor takes (others are ignored; a
    missing one takes its declared default)."""
    discover()
    if name not in REGULARIZERS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(REGULARIZERS)}")
    cls = REGULARIZERS[name]
    return cls(latent_dim, **_constructor_values(cls, latent_dim, options))


def build_flow(name: str, latent_dim: int, **options):
    """The flow called `name` ("none": no flow, the posterior stays Gaussian), at its declared
    defaults unless given (e.g. `flow_depth`, `flow_width`)."""
    discover()
    if name == NO_FLOW:
        return None
    if name not in FLOWS:
        raise ValueError(f"unknown flow {name!r}; choose one of: {NO_FLOW}, {', '.join(FLOWS)}")
    cls = FLOWS[name]
    return cls(latent_dim, **_constructor_values(cls, latent_dim, options))


def _parts(model: str, flow: str, strategy: str) -> list[tuple[str, str, type | None]]:
    """(flag, name, class) of every part of a model: its regularizer, its flow if any, its strategy."""
    discover()
    alias = FLOW_MODELS.get(model)
    parts = [("--model", model, REGULARIZERS.get(alias.regularizer if alias else model))]
    if flow != NO_FLOW:
        parts.append(("--flow", flow, FLOWS.get(flow)))
    return parts + [("--strategy", strategy, STRATEGIES.get(strategy))]


def bf16_parity(model: str, flow: str, strategy: str, data_kind: str) -> tuple[bool, str]:
    """Whether every part of a model (its regularizer, flow and strategy) has bf16 training measured
    within seed noise of fp32 on `data_kind` data, and the reason in a few words."""
    parts = _parts(model, flow, strategy)
    for flag, name, cls in parts:
        facts = getattr(cls, "capabilities", Capabilities())
        if data_kind in facts.fp32_because:
            return False, facts.fp32_because[data_kind]
        if data_kind not in facts.bf16:
            return False, f"bf16 parity not established for {data_kind} {flag} {name}"
    return True, parts[0][2].capabilities.bf16[data_kind]


def data_problem(model: str, flow: str, strategy: str, data_kind: str) -> str | None:
    """Why this model cannot run on `data_kind` data (one line), or None."""
    for flag, name, cls in _parts(model, flow, strategy):
        kinds = getattr(cls, "capabilities", Capabilities()).data
        if data_kind not in kinds:
            return f"{flag} {name}: runs on {' and '.join(kinds)} data only, not {data_kind}"
    return None


def single_process_parts(model: str, flow: str, strategy: str) -> list[tuple[str, str]]:
    """(flag, name) of every part of a model (regularizer, flow, strategy) that may not train under
    torchrun (`capabilities.multi_process` False)."""
    return [(flag, name) for flag, name, cls in _parts(model, flow, strategy)
            if not getattr(cls, "capabilities", Capabilities()).multi_process]


def build_strategy(config, model, optimizer, train_data, runner=None, precision=None):
    """The `--strategy` of `config`, around the model, its optimizer and the training batches."""
    discover()
    options = {} if precision is None else {"precision": precision}
    return STRATEGIES[config.strategy](config, model, optimizer, train_data, runner, **options)
