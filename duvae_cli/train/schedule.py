"""The KL weight's schedule (design.md §2): linear annealing from `kl_start` to 1 over `warm_up`
epochs, per step."""

from __future__ import annotations


def kl_weight_at(config, step: int, steps_per_epoch: int) -> float:
    """Linear annealing from kl_start to 1 over `warm_up` epochs, per step (the weight of step+1)."""
    if config.warm_up <= 0 or config.kl_start >= 1:
        return 1.0
    rate = (1.0 - config.kl_start) / (config.warm_up * steps_per_epoch)
    return min(1.0, config.kl_start + rate * (step + 1))
