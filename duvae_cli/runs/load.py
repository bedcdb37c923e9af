"""A trained run loaded back: its config, the model of a checkpoint and the dataset it was trained on,
each checked against what the run recorded (data binding, config in the checkpoint, finite weights).
An export folder (`duvae export`; export.py, exported.py) loads the same way once its files verify.
The run is checked before any of it is used (trust.py): hostile input is one line, nothing runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from duvae_cli.config import TrainConfig, build_model
from duvae_cli.data import binding
from duvae_cli.data.locate import data_roots, run_dataset
from duvae_cli.errors import DuvaeError, UsageError
from duvae_cli.runs.checkpoint import load_checkpoint_hashed, read_weights
from duvae_cli.runs.exported import own_vocabulary, verify_export
from duvae_cli.runs.layout import EXPORT_WEIGHTS, checkpoint_file, is_export, require_run_dir
from duvae_cli.runs.run import read_config, read_json
from duvae_cli.runs.selfcheck import check_checkpoint
from duvae_cli.runs.trust import check_folder, check_workspace_path


@dataclass
class Trained:
    """A trained model loaded back from its run directory (or export folder), in eval mode."""

    run_dir: Path  # the run, or the export folder
    config: TrainConfig
    model: torch.nn.Module
    dataset: object  # duvae_cli.data.store.TextDataset | ImageDataset
    checkpoint: Path  # the file the weights came from
    checkpoint_sha256: str  # of that checkpoint (an export: of the run's checkpoint it holds)
    data_notes: tuple = ()  # where the data was found (data/locate.py), each split changed since training
    name: str = ""  # best or last ("": the checkpoint file's stem)

    @property
    def checkpoint_name(self) -> str:
        return self.name or Path(self.checkpoint).stem


def load_trained(run_dir: Path, checkpoint: str = "best", device: str | torch.device = "cpu",
                 data_root: str | Path | None = None, needs_data: bool = True) -> Trained:
    """Reload the model of a run (`best` or `last` checkpoint) and the dataset it was trained on (a
    moved run: the same data under `data_root`, its config's data_root or data/; data/locate.py).
    `run_dir` may be an export folder, which works without its data where `needs_data` is False
    (encode, generate, the Python API)."""
    run_dir = Path(run_dir)
    require_run_dir(run_dir)
    run_dir = run_dir.resolve()
    if checkpoint not in ("best", "last"):
        raise UsageError(f"--checkpoint {checkpoint!r}: choose best or last")
    if is_export(run_dir):
        return load_export(run_dir, checkpoint, device, data_root, needs_data)
    check_folder(run_dir)
    path = checkpoint_file(run_dir, checkpoint)
    config = read_config(run_dir)
    dataset, notes = run_data(run_dir, config, read_json(run_dir / "manifest.json"), data_root)
    state, sha256 = load_checkpoint_hashed(path, device)  # safetensors only: a pickle is refused unread
    check_checkpoint(state, config, path)  # config.json agrees with the checkpoint; finite weights
    model = model_from(config, dataset, state.get("model"), path, run_dir / "config.json", device)
    return Trained(run_dir, config, model, dataset, path, sha256, tuple(notes))


def load_export(folder: Path, checkpoint: str, device, data_root=None, needs_data: bool = True) -> Trained:
    """An export folder as a `Trained`, once its files verify. Its data is found by fingerprint
    (`data_root`, data/); without it, and when `needs_data` is False (encode, generate,
    `duvae_cli.load`), the model reads through the export's own vocabulary."""
    block, data = verify_export(folder)
    if block["checkpoint"] != checkpoint:
        raise DuvaeError(f"{folder}: an export of the {block['checkpoint']} checkpoint only; use "
                         f"--checkpoint {block['checkpoint']} (checkpoint={block['checkpoint']!r})")
    config = read_config(folder)  # types and ranges; an export holds no absolute path
    info = read_json(folder / "manifest.json")
    check_workspace_path(info.get("data_path"), "data_path", folder / "manifest.json", absolute_ok=False)
    path = folder / EXPORT_WEIGHTS
    weights, metadata = read_weights(data, path, device)
    if metadata.get("checkpoint_sha256") != block["checkpoint_sha256"]:
        raise DuvaeError(f"{path}: holds checkpoint {metadata.get('checkpoint_sha256')!r}, config.json says "
                         f"{block['checkpoint_sha256']!r}; the export was altered")
    check_checkpoint({"model": weights}, config, path)  # finite weights
    try:
        dataset, notes = run_data(folder, config, info, data_root, recorded=False)
    except DuvaeError:
        if needs_data:
            raise
        dataset = own_vocabulary(folder, config.dataset, block.get("longest_sentence"),
                                 block.get("longest_train_sentence"))
        how = "text is read and written through its vocab.txt" if dataset.kind == "text" else "images need none"
        notes = [f"note: {folder.name}: its {config.dataset} data is not here (found by fingerprint under "
                 f"--data-root DIR or data/); {how}"]
    model = model_from(config, dataset, weights, path, folder / "config.json", device)
    return Trained(folder, config, model, dataset, path, block["checkpoint_sha256"], tuple(notes),
                   name=block["checkpoint"])


def run_data(run_dir: Path, config: TrainConfig, info: dict, data_root: str | Path | None = None,
             recorded: bool = True) -> tuple[object, list[str]]:
    """(dataset, notes): the run's data where it was (manifest.json data_path; not with `recorded`
    False) or the same data under the roots (data/locate.py); a different vocabulary stops here."""
    roots = data_roots(data_root, config.data_root)
    dataset, found = run_dataset(run_dir, info.get("data_path") if recorded else None, config.dataset, roots)
    return dataset, [*filter(None, [found]), *binding.check(run_dir, dataset)]


def model_from(config: TrainConfig, dataset, state, path: Path, config_json: Path, device) -> torch.nn.Module:
    """The model of `config` with the weights `state` (of the file `path`), in eval mode."""
    model = build_model(config, dataset).to(device)
    try:
        model.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError) as exc:  # torch's message lists every tensor: keep its first line
        raise DuvaeError(f"{path}: does not fit the model of {config_json} and "
                         f"{getattr(dataset, 'path', 'its data')} ({str(exc).splitlines()[0][:200]})") from None
    model.eval()
    return model
