"""Declared options: every training option is one `Option`, declared once next to the code that reads it.

A method (regularizer, flow, strategy) lists its options in a class attribute `options` and its paper
settings per dataset in `presets`; the general fields (sizes, schedule, bookkeeping) are one table in
`train/general.py`. `TrainConfig`, the `duvae train` flags, `--set`/`--config` parsing, validation,
`--help` and the docs table (docs/options.md) are all derived from these declarations
(train/config.py, train/declared.py, commands/train.py). docs/extending.md walks through adding one.

This module is a leaf: it imports nothing from the package, so any file can declare options.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

_RANGE = re.compile(r"^\s*(?:(>=|>|<=|<)\s*(\S+)|([\[(])\s*(\S+)\s*,\s*(\S+)\s*([\])]))\s*$")
TYPE_WORDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


@dataclass(frozen=True)
class Range:
    """A numeric interval; `None` bounds are open-ended. Parsed from "> 0", ">= 1", "(0, 1]", "[0, 1)"."""

    low: float | None = None
    high: float | None = None
    low_closed: bool = True
    high_closed: bool = True
    text: str = ""

    @classmethod
    def parse(cls, text: str) -> "Range":
        match = _RANGE.match(text)
        if not match:
            raise ValueError(f"range {text!r}: write '> 0', '>= 1', '< 1', '(0, 1]' or '[0, 1)'")
        op, bound, left, low, high, right = match.groups()
        if op:
            value = float(bound)
            if op.startswith(">"):
                return cls(low=value, low_closed=op == ">=", text=text.strip())
            return cls(high=value, high_closed=op == "<=", text=text.strip())
        return cls(float(low), float(high), left == "[", right == "]", text.strip())

    def contains(self, value: float) -> bool:
        if self.low is not None and (value < self.low or (value == self.low and not self.low_closed)):
            return False
        return not (self.high is not None and (value > self.high or (value == self.high and not self.high_closed)))

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            return f"must be in {self.text}"
        return f"must be {self.text}"

    def inequality(self) -> str:
        """'0 <= value < 1', 'value > 0': brackets-free (Rich would read [..] as markup in --help)."""
        if self.high is None:
            return f"value {'>=' if self.low_closed else '>'} {_number(self.low)}"
        low = "" if self.low is None else f"{_number(self.low)} {'<=' if self.low_closed else '<'} "
        high = "" if self.high is None else f" {'<=' if self.high_closed else '<'} {_number(self.high)}"
        return f"{low}value{high}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


@dataclass(frozen=True)
class Option:
    """One config field.

    name: the config.json key and `--set` key; the flag is `--name-with-dashes`.
    type: int, float, str or bool. default: the value when the method is chosen (general fields: always).
    help: one sentence for `--help` and the docs. range: "> 0", "[0, 1)", ... (numbers are also finite).
    choices: the allowed strings. flag: whether `duvae train` has a flag (else `--set`/`--config` only).
    always: a method option that every config.json holds (at `default`), whichever method is chosen;
    otherwise it is null unless its method is chosen, and filled with the method's default then.
    """

    name: str
    type: type
    default: Any
    help: str
    range: str | None = None
    choices: tuple[str, ...] | None = None
    flag: bool = True
    always: bool = False
    bounds: Range | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.type not in TYPE_WORDS:
            raise ValueError(f"option {self.name}: type must be int, float, str or bool")
        if self.range is not None:
            object.__setattr__(self, "bounds", Range.parse(self.range))

    @property
    def flag_name(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def label(self) -> str:
        """How messages name the option: its flag, or the bare field name (`--set`/`--config` only)."""
        return self.flag_name if self.flag else self.name

    def constraint(self) -> str:
        """'value > 0', 'sgd or adam', ... for the help and the docs."""
        if self.choices:
            return either(self.choices)
        return self.bounds.inequality() if self.bounds is not None else ""

    def coerce(self, value: Any, nullable: bool) -> Any:
        """A value from JSON or a flag, checked for type; ints are accepted where floats are expected.
        Raises ValueError with the reason (the caller names the option and the source)."""
        if value is None:
            if nullable:
                return None
            raise ValueError(f"expected {TYPE_WORDS[self.type]}, got null")
        if self.type is bool:
            if isinstance(value, bool):
                return value
        elif self.type is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        elif self.type is float:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
        elif isinstance(value, str):
            return value
        raise ValueError(f"expected {TYPE_WORDS[self.type]}, got {value!r}")

    def parse(self, raw: str, nullable: bool) -> Any:
        """A value from a `key=value` string (`--set`)."""
        text = raw.strip()
        if nullable and text.lower() in ("none", "null"):
            return None
        try:
            if self.type is bool:
                if text.lower() not in ("true", "false", "1", "0"):
                    raise ValueError
                return text.lower() in ("true", "1")
            if self.type is int:
                return int(text)
            if self.type is float:
                return float(text)
        except ValueError:
            raise ValueError(f"expected {TYPE_WORDS[self.type]}, got {raw!r}") from None
        return text

    def problem(self, value: Any) -> str | None:
        """Why `value` (already of the right type, or None) is not allowed, or None if it is."""
        if value is None:
            return None
        if self.choices is not None and value not in self.choices:
            return f"choose {either(self.choices)}"
        if self.type in (int, float):
            if isinstance(value, float) and not math.isfinite(value):  # ints are finite (10**400: no float)
                return "must be a finite number"
            if self.bounds is not None and not self.bounds.contains(value):
                return self.bounds.describe()
        return None


def either(names) -> str:
    """'a, b or c'."""
    names = list(names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def check_declarations(options: tuple[Option, ...], owner: str) -> None:
    """Defaults must satisfy their own declaration; names must be identifiers, each once."""
    seen = set()
    for option in options:
        if not option.name.isidentifier() or option.name in seen:
            raise ValueError(f"{owner}: option name {option.name!r} is not a unique identifier")
        seen.add(option.name)
        reason = option.problem(option.coerce(option.default, nullable=False))
        if reason:
            raise ValueError(f"{owner}: option {option.name} default {option.default!r}: {reason}")


# ------------------------------------------------------------------ the other commands' limits ---
# `duvae train`'s fields declare their ranges above (train/general.py: Option(..., range=)). The
# options of the other commands (evaluate, classify, generate, visualize, the run flags of train) are
# Typer parameters; their limits are declared here, once, and checked where each command validates
# its options (`command_problem`). Upper bounds keep a typo (1e20, 99999999999999999999) from
# reaching numpy/torch as an overflow, an allocation of exabytes or a loop that never ends.

SEED_RANGE = "[0, 4294967295]"  # 2**32 - 1: every seed numpy's and torch's generators accept

COMMAND_OPTIONS: dict[str, Option] = {o.name: o for o in (
    Option("seed", int, 783435, "Seed of the command's random draws.", range=SEED_RANGE),
    Option("iw_samples", int, 500, "K, importance samples per example (IW-NLL).", range="[1, 100000]"),
    Option("examples", int, 1, "Examples of a seeded subset.", range="[1, 1000000000]"),
    Option("batch_size", int, 64, "Examples per batch.", range="[1, 1000000]"),
    Option("repeats", int, 1, "Probe repeats (seeds).", range="[1, 1000]"),
    Option("labels", int, 100, "A label budget.", range="[1, 1000000000]"),
    Option("sample", int, 10, "Codes decoded from the prior.", range="[1, 100000]"),
    Option("n", int, 10, "Sentences reconstructed and prior codes decoded.", range="[1, 100000]"),
    Option("steps", int, 5, "Points of an interpolation, both ends included.", range="[2, 10000]"),
    Option("beam", int, 5, "Beam width.", range="[1, 1000]"),
    Option("temperature", float, 1.0, "Softmax temperature of sampling.", range="(0, 1000]"),
    Option("max_length", int, 50, "Most words per decoded sentence.", range="[1, 100000]"),
    Option("log_every", int, 10, "Per-step values every N optimizer steps.", range="[1, 1000000000]"),
)}


def command_problem(**values: Any) -> str | None:
    """'--iw-samples 0: must be in [1, 100000]' for the first value outside its declaration in
    COMMAND_OPTIONS (None: not given), else None. The caller raises it as a usage error."""
    for name, value in values.items():
        option = COMMAND_OPTIONS[name]
        reason = option.problem(value)
        if reason:
            return f"{option.flag_name} {value}: {reason}"
    return None


check_declarations(tuple(COMMAND_OPTIONS.values()), "duvae_cli.options.COMMAND_OPTIONS")
