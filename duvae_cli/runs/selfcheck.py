"""A run is checked against itself before its weights are used (docs/reliability.md).

    check_checkpoint(payload, config, path)   # DuvaeError, one line, if config.json and the
                                              # checkpoint disagree or a weight is not finite

- **Config.** Every checkpoint `duvae train` writes stores the config it trained with. config.json
  must say the same: a config.json edited to another dataset or model would otherwise file the
  run's numbers under that name. Fields that `train --resume` may change, or that say where the run
  is rather than what it is, are not compared (`MAY_DIFFER`). A checkpoint without a stored config
  (none made by `duvae train`) is checked on its weights only.
- **Weights.** A NaN or infinite tensor in the model's state (parameters or buffers such as BN's
  running statistics) is refused, naming the checkpoint and the first bad tensor: such a model would
  evaluate to `nan` metrics and encode to NaN codes.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from duvae_cli.errors import DuvaeError

# `train --resume --epochs/--device` rewrites these in config.json (the best checkpoint keeps the older value);
# data_root says where the data is, which the run's data binding checks by fingerprint.
MAY_DIFFER = ("epochs", "device", "data_root")
# config.json may hold a value that training resolves: `--precision auto` becomes fp32 or bf16 when
# the loop starts (a run made through the library's `train()` keeps "auto" in config.json).
RESOLVED_LATER = {"precision": "auto"}


def first_config_difference(stored: dict, config: dict) -> tuple[str, object, object] | None:
    """(field, checkpoint value, config.json value) of the first field (in name order) present in
    both that differs, comparing JSON forms (a tuple equals its list); None when they agree."""
    for name in sorted(set(stored) & set(config)):
        if name in MAY_DIFFER or RESOLVED_LATER.get(name, object()) == config[name]:
            continue
        old, new = (json.loads(json.dumps(v, default=str)) for v in (stored[name], config[name]))
        if old != new:
            return name, stored[name], config[name]
    return None


def first_non_finite(state: dict) -> str | None:
    """The name of the first floating-point tensor of a state dict with a NaN or infinite entry."""
    for name, tensor in state.items():
        if torch.is_tensor(tensor) and tensor.is_floating_point() and not torch.isfinite(tensor).all():
            return name
    return None


def check_checkpoint(payload: dict, config, path: Path) -> None:
    """Refuse a checkpoint whose stored config differs from config.json (`config`: the run's
    TrainConfig) or whose model state is not finite; one line naming both files or the tensor."""
    path = Path(path)
    stored = payload.get("config") if isinstance(payload, dict) else None
    if isinstance(stored, dict):
        difference = first_config_difference(stored, config.to_dict())
        if difference is not None:
            name, old, new = difference
            config_json = path.parent.parent / "config.json"
            raise DuvaeError(f"{config_json}: {name} is {new!r} but the checkpoint {path} was trained with "
                             f"{name} {old!r}; the run's config.json was edited or belongs to another run")
    state = payload.get("model") if isinstance(payload, dict) else None
    bad = first_non_finite(state) if isinstance(state, dict) else None
    if bad is not None:
        raise DuvaeError(f"{path}: tensor {bad} holds NaN or infinite values; this checkpoint cannot give "
                         "numbers (resume from an earlier checkpoint or retrain)")
