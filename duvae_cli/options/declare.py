"""An `Option`: one declared option (name, type, default, help, limits, how a command spells it),
and the checks of a value against its declaration (`checked`: a UsageError naming the flag)."""

from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from duvae_cli.errors import UsageError

_RANGE = re.compile(r"^\s*(?:(>=|>|<=|<)\s*(\S+)|([\[(])\s*(\S+)\s*,\s*(\S+)\s*([\])]))\s*$")
TYPE_WORDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false", Path: "a path"}


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
    """One option: a config field, or an option of a command's options record.

    name: the config.json / `--set` key, the dataclass field and the command's parameter; the flag is
    `--name-with-dashes` unless `flags` spells it. type: int, float, str, bool or Path (of one value).
    default: the value when not given (None: optional, "not given"; a method option: its value when
    the method is chosen). help: one sentence for `--help` and the docs. range: "> 0", "[0, 1)", ...
    (numbers are also finite). choices: the allowed strings. flag: whether the command has a flag
    (a config field without one: `--set`/`--config` only; a record's field without one: Python only).
    always: a method option that every config.json holds (at `default`), whichever method is chosen;
    otherwise it is null unless its method is chosen, and filled with the method's default then.

    How a command spells and reads it (commands/common.py): flags: explicit spellings, e.g.
    ("--format",), ("--quiet", "-q"), ("--force/--no-force",). metavar: the value's name in `--help`.
    multiple: repeatable; the value is a tuple (None given: the default). nargs: values per use
    (2: `--interpolate A B`, a tuple). convert: makes the stored value from the given one, the flag's
    text ("1GiB" -> 2**30) or a value already converted (it must accept its own output); it raises
    ValueError with the reason (or a UsageError of its own) and replaces the type, range and choices
    checks. panel: the `--help` panel it is listed in.
    """

    name: str
    type: type
    default: Any
    help: str
    range: str | None = None
    choices: tuple[str, ...] | None = None
    flag: bool = True
    always: bool = False
    flags: tuple[str, ...] = ()
    metavar: str | None = None
    multiple: bool = False
    nargs: int = 1
    convert: Callable[[Any], Any] | None = field(default=None, compare=False)
    panel: str | None = None
    bounds: Range | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.type not in TYPE_WORDS:
            raise ValueError(f"option {self.name}: type must be int, float, str, bool or Path")
        if self.multiple and self.nargs != 1:
            raise ValueError(f"option {self.name}: a repeatable option takes one value per use")
        if self.range is not None:
            object.__setattr__(self, "bounds", Range.parse(self.range))

    def but(self, **changes) -> "Option":
        """The same declaration with some fields changed, e.g. `SEED.but(help="...")`."""
        return dataclasses.replace(self, **changes)

    @property
    def flag_name(self) -> str:
        if self.flags:
            return self.flags[0].split("/")[0]
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
        elif self.type is Path:
            if isinstance(value, (str, os.PathLike)):
                return Path(value)
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
        return Path(text) if self.type is Path else text

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
    """Defaults must satisfy their own declaration (None: optional); names must be identifiers, each once."""
    seen = set()
    for option in options:
        if not option.name.isidentifier() or option.name in seen:
            raise ValueError(f"{owner}: option name {option.name!r} is not a unique identifier")
        seen.add(option.name)
        try:
            checked(option, option.default)
        except (ValueError, UsageError) as exc:
            raise ValueError(f"{owner}: option {option.name} default {option.default!r}: "
                             f"{str(exc).split(': ', 1)[-1]}") from None


def checked(option: Option, value: Any) -> Any:
    """`value` as stored (converted, typed, a tuple if repeatable or of several values), or a
    UsageError naming the flag: '--seed -1: must be in [0, 4294967295]'. None: not given (an option
    declared with a default passes it only if that default is None; a repeatable one gets its default)."""
    several = option.multiple or option.nargs > 1
    if value is None and (option.default is None or several):
        return option.default
    if option.convert is not None:
        try:
            return option.convert(value)
        except ValueError as exc:
            raise UsageError(f"{option.label} {_shown(value)}: {exc}") from None
    if several:
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise UsageError(f"{option.label}: expected a list of {_plural(option)}, got {value!r}")
        values = tuple(_one(option, v, nullable=False) for v in value)
        if option.nargs > 1 and len(values) != option.nargs:
            raise UsageError(f"{option.label}: expected {option.nargs} values, got {len(values)}")
        return values
    return _one(option, value, nullable=False)


def _one(option: Option, value: Any, nullable: bool) -> Any:
    try:
        value = option.coerce(value, nullable)
    except ValueError as exc:
        raise UsageError(f"{option.label}: {exc}") from None
    reason = option.problem(value)
    if reason:
        raise UsageError(f"{option.label} {_shown(value)}: {reason}")
    return value


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _plural(option: Option) -> str:
    return TYPE_WORDS[option.type].split(" ", 1)[1] + "s"
