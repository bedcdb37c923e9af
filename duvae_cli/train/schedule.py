"""The KL weight's schedule (`--anneal`; design.md §2, docs/training.md "KL annealing").

`linear` (the default): from `kl_start` to 1 over `warm_up` epochs, per step, then 1.

`cyclical` (Fu et al., NAACL 2019): the run's T optimizer steps (T = epochs x batches per epoch, the
planned length) are cut into M = `cycles` cycles of P = T / M steps; in each cycle the weight rises
linearly from `kl_start` to 1 over the first R x P steps (R = `cycle_ratio`), then holds at 1 until
the next cycle starts. With t the 0-based index of the step about to be taken:

    c = the last cycle with floor(c P) <= t,   i = t - floor(c P)   (steps since that cycle began)
    w(t) = min(1, kl_start + (1 - kl_start) i / (R P))

This is the closed form of the reference's `frange_cycle_linear` (haofuml/cyclical_annealing,
README.md): equal to it at every step, also when M does not divide T (cycles start at floor(c T / M)),
and exactly `kl_start` at each cycle's first step. The paper's experiment scripts also restart a
cosine learning-rate schedule every cycle; duvae cycles the KL weight only.
"""

from __future__ import annotations

import math


def kl_weight_at(config, step: int, steps_per_epoch: int) -> float:
    """The KL weight of step `step` (0-based) of a run with `steps_per_epoch` batches per epoch.
    `linear`: the weight of step + 1 (He et al.'s increment-before-use); `cyclical`: `cyclical_weight`."""
    if config.anneal == "cyclical":
        return cyclical_weight(step, config.epochs * steps_per_epoch, config.cycles, config.cycle_ratio,
                               config.kl_start)
    if config.warm_up <= 0 or config.kl_start >= 1:
        return 1.0
    rate = (1.0 - config.kl_start) / (config.warm_up * steps_per_epoch)
    return min(1.0, config.kl_start + rate * (step + 1))


def cyclical_weight(step: int, total_steps: int, cycles: int, ratio: float, start: float) -> float:
    """w(step) of the cyclical schedule (module docstring); 1.0 throughout when `start` >= 1."""
    if start >= 1.0:
        return 1.0
    period = total_steps / cycles  # P, a float
    cycle = min(cycles - 1, max(0, math.floor(step / period)))  # off by one at most: cycles
    while cycle > 0 and math.floor(cycle * period) > step:  # start at floor(c P), not at c P
        cycle -= 1
    while cycle + 1 < cycles and math.floor((cycle + 1) * period) <= step:
        cycle += 1
    since = step - math.floor(cycle * period)
    return min(1.0, start + (1.0 - start) * since / (ratio * period))
