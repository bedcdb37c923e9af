"""Declared options: every option of duvae is one `Option`, declared once next to the code that reads it.

Training: a method (regularizer, flow, strategy) lists its options in a class attribute `options` and
its paper settings per dataset in `presets`; the general fields (sizes, schedule, bookkeeping) are one
table in `config/general.py`. `TrainConfig`, the `duvae train` flags, `--set`/`--config` parsing,
validation, `--help` and docs/options.md are derived from these declarations (config/, commands/train.py).

The other commands: each library options record (`EvalOptions`, `ClassifyOptions`, `DecodeOptions`,
`PrepareOptions`, `SweepOptions`, ...) is a tuple of Options made into a frozen dataclass by
`options_dataclass`, whose construction checks every value against its declaration; the commands'
flags and their checks are derived from the same tuples (commands/common.py `command`).
docs/extending.md walks through adding one.

- `declare.py`: `Option`, its limits (`Range`) and the check of a value (`checked`);
- `record.py`: `options_dataclass`, the frozen options record of a tuple of Options;
- `shared.py`: the options many commands share (`SEED`, `CHECKPOINT`, `DEVICE`, `DATA_ROOT`), `DEFAULT_SEED`.

This package imports only `duvae_cli.errors` (no torch, no typer), so any file can declare options.
"""

from duvae_cli.options.declare import TYPE_WORDS, Option, Range, check_declarations, checked, either
from duvae_cli.options.record import options_dataclass
from duvae_cli.options.shared import (CHECKPOINT, DATA_ROOT, DEFAULT_SEED, DEVICE, SEED, SEED_RANGE,
                                      parse_size)

__all__ = ["CHECKPOINT", "DATA_ROOT", "DEFAULT_SEED", "DEVICE", "SEED", "SEED_RANGE", "TYPE_WORDS", "Option",
           "Range", "check_declarations", "checked", "either", "options_dataclass", "parse_size"]
