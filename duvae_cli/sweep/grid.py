"""A sweep's grid: `--grid key=v1,v2,...` over any config field, crossed with `--seeds`.

Each point is a dict of typed values (typed like the config field, as `--set` types them), named by
its values: {"gamma": 0.4, "p": 1.0, "seed": 2} -> "gamma=0.4_p=1_seed=2".
"""

from __future__ import annotations

import itertools

from duvae_cli.errors import UsageError
from duvae_cli.config.resolve import parse_set

CHOSEN = ("dataset", "model")  # fields that pick presets: passed as flags, not --set


def parse_grid(items: list[str]) -> dict[str, list]:
    """`["gamma=0.4,0.5", "p=1,0.8"]` -> {"gamma": [0.4, 0.5], "p": [1.0, 0.8]} (order kept)."""
    grid: dict[str, list] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        values = [v.strip() for v in raw.split(",") if v.strip()]
        if not sep or not values:
            raise UsageError(f"--grid {item!r}: expected key=v1,v2,... (e.g. --grid gamma=0.4,0.5)")
        if key in grid:
            raise UsageError(f"--grid {key}: given twice; list all its values in one --grid")
        if key == "seed":
            raise UsageError("--grid seed: use --seeds 1,2,3")
        typed = [v if key in CHOSEN else _typed(item, key, v) for v in values]
        if len(set(map(str, typed))) != len(typed):
            raise UsageError(f"--grid {item!r}: a value is repeated")
        grid[key] = typed
    if not grid:
        raise UsageError("--grid: give at least one, e.g. --grid gamma=0.4,0.5,0.6,0.7")
    return grid


def _typed(item: str, key: str, value: str):
    try:
        return parse_set([f"{key}={value}"])[key]
    except UsageError as exc:
        reason = str(exc).split(": ", 1)[-1]
        raise UsageError(f"--grid {item!r}: {reason}") from None


def parse_seeds(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"--seeds {text!r}: expected integers separated by commas, e.g. 1,2,3") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds {text!r}: expected distinct integers, e.g. 1,2,3")
    return seeds


def expand(grid: dict[str, list], seeds: list[int] | None) -> list[dict]:
    """Every combination, the first --grid varying slowest, seeds fastest."""
    axes = list(grid.items()) + ([("seed", seeds)] if seeds else [])
    return [dict(zip([k for k, _ in axes], combo)) for combo in itertools.product(*[v for _, v in axes])]


def point_name(values: dict) -> str:
    return "_".join(f"{k}={_short(v)}" for k, v in values.items())


def _short(value) -> str:
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return text.replace("/", "-").replace(" ", "-")
