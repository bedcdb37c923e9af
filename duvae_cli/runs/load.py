"""A trained run loaded back: its config, the model of a checkpoint and the dataset it was trained on,
each checked against what the run recorded (data binding, config in the checkpoint, finite weights)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from duvae_cli.config import TrainConfig, build_model
from duvae_cli.data import binding
from duvae_cli.data.locate import data_roots, run_dataset
from duvae_cli.errors import DuvaeError
from duvae_cli.runs.checkpoint import load_checkpoint_hashed
from duvae_cli.runs.run import read_config, read_json
from duvae_cli.runs.selfcheck import check_checkpoint


@dataclass
class Trained:
    """A trained model loaded back from its run directory, in eval mode."""

    run_dir: Path
    config: TrainConfig
    model: torch.nn.Module
    dataset: object  # duvae_cli.data.store.TextDataset | ImageDataset
    checkpoint: Path
    checkpoint_sha256: str
    data_notes: tuple = ()  # where the data was found (data/locate.py), each split changed since training


def load_trained(run_dir: Path, checkpoint: str = "best", device: str | torch.device = "cpu",
                 data_root: str | Path | None = None) -> Trained:
    """Reload the model of a run (`best` or `last` checkpoint) and the dataset it was trained on (a
    moved run: the same data under `data_root`, its config's data_root or data/; data/locate.py)."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise DuvaeError(f"{run_dir}: no such run directory")
    run_dir = run_dir.resolve()
    if checkpoint not in ("best", "last"):
        raise DuvaeError(f"--checkpoint {checkpoint!r}: choose best or last")
    config = read_config(run_dir)
    info = read_json(run_dir / "manifest.json")
    roots = data_roots(data_root, config.data_root)
    dataset, found = run_dataset(run_dir, info.get("data_path"), config.dataset, roots)  # found: a note or None
    notes = [*filter(None, [found]), *binding.check(run_dir, dataset)]  # a different vocabulary stops here
    path = run_dir / "checkpoints" / f"{checkpoint}.pt"
    state, sha256 = load_checkpoint_hashed(path, device)
    check_checkpoint(state, config, path)  # config.json agrees with the checkpoint; finite weights
    model = build_model(config, dataset).to(device)
    try:
        model.load_state_dict(state["model"])
    except (RuntimeError, KeyError) as exc:  # torch's message lists every tensor: keep its first line
        raise DuvaeError(f"{path}: does not fit the model of {run_dir / 'config.json'} and "
                         f"{dataset.path} ({str(exc).splitlines()[0][:200]})") from None
    model.eval()
    return Trained(run_dir, config, model, dataset, path, sha256, tuple(notes))
