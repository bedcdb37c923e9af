"""`options_dataclass`: a frozen options record made from a tuple of declared Options, whose
construction checks every value against its declaration."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from duvae_cli.options.declare import Option, check_declarations, checked


def options_dataclass(options: tuple[Option, ...]):
    """Class decorator: a frozen dataclass whose fields are `options` (in order, at their defaults),
    then the class's own annotated fields (non-option parts, with defaults); its construction checks
    and converts every option value (`checked`: UsageError naming the flag, exit 2), then calls the
    class's `check()` if it defines one (rules that tie fields together). `Cls.options` is the tuple;
    `Cls.from_flags(values)` builds one from a command's values (None: not given).

        @options_dataclass(DECODE_OPTIONS)
        class DecodeOptions:
            def generator(self): ...
    """
    check_declarations(options, "options_dataclass")

    def make(cls):
        own = dict(cls.__dict__.get("__annotations__", {}))
        clash = [o.name for o in options if o.name in own]
        if clash:
            raise ValueError(f"{cls.__name__}: {clash[0]} is both a declared option and a field")
        cls.__annotations__ = {**{o.name: _annotation(o) for o in options}, **own}
        for option in options:
            setattr(cls, option.name, option.default)
        cls.options = options
        cls.__post_init__ = _check_fields
        cls.from_flags = classmethod(_from_flags)
        return dataclass(frozen=True)(cls)

    return make


def _annotation(option: Option) -> Any:
    if option.convert is not None:
        return Any
    if option.multiple or option.nargs > 1:
        return tuple
    return option.type if option.default is not None else (option.type | None)


def _check_fields(self) -> None:
    for option in type(self).options:
        object.__setattr__(self, option.name, checked(option, getattr(self, option.name)))
    check = getattr(self, "check", None)
    if check is not None:
        check()


def _from_flags(cls, values: dict):
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in values.items() if k in names and v is not None})
