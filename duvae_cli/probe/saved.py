"""Saved probes: `duvae classify` keeps, per label budget, the probe of its first repeat (seed = --seed),
so that `duvae classify RUN --predict FILE --labels N` applies it to new data (use/predict.py).

    FOLDER/probes/labels-<N>.safetensors   `weight` (K, F) and `bias` (K,), float64 (never a pickle)
    FOLDER/probes/labels-<N>.json          what the probe is of: the run, its checkpoint and sha256, the
                                           features, the data (fingerprints of train/valid/test, the
                                           files of `--data`), budget, seed, subset, accuracies, settings

FOLDER is where classify writes its results: the run directory, or `--out DIR` (a read-only run, an
export). A later classify at the same budget replaces the pair (each file atomically; the JSON, written
last, names the weights' sha256, so a pair from two different runs of classify is refused). A probe
reads the features of the checkpoint it was trained on: `load_probe` refuses one whose checkpoint
sha256 is not the run's current one (stale), in one line. Omniglot's per-alphabet probes are not saved.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from duvae_cli import __version__
from duvae_cli.errors import DuvaeError, UsageError
from duvae_cli.io import atomic_write_text, sha256_bytes
from duvae_cli.runs.checkpoint import read_bytes, read_weights, weights_bytes, write_file

PROBES = "probes"
FORMAT = "duvae-probe/1"


def probe_paths(folder: Path, budget: int) -> tuple[Path, Path]:
    """(weights, description) of the probe of `budget` labels in FOLDER/probes/."""
    base = Path(folder) / PROBES / f"labels-{int(budget)}"
    return base.with_suffix(".safetensors"), base.with_suffix(".json")


def save_probes(result, folder: Path) -> list[Path]:
    """The repeat-0 probe of every budget of `result` (a probe.classify.ProbeResult); the files written."""
    written = []
    for record in [r for r in result.records if r.repeat == 0]:
        weights, info = probe_paths(folder, record.budget)
        data = weights_bytes({"weight": torch.from_numpy(np.ascontiguousarray(record.weight)),
                              "bias": torch.from_numpy(np.ascontiguousarray(record.bias))},
                             {"duvae_probe": FORMAT, "checkpoint_sha256": result.checkpoint_sha256})
        write_file(weights, data)
        atomic_write_text(info, json.dumps(_description(result, record, sha256_bytes(data)), indent=2) + "\n")
        written += [weights, info]
    return written


def _description(result, record, weights_sha256: str) -> dict:
    return {"format": FORMAT, "labels": record.budget, "repeat": record.repeat, "seed": record.seed,
            "subset": record.kind, "train_source": f"subsets/{record.budget}" if record.kind == "official" else "train",
            "n_train": record.n_train, "n_classes": int(record.weight.shape[0]),
            "feature_dim": int(record.weight.shape[1]), "features": result.features,
            "run": Path(result.run_dir).name, "dataset": result.dataset, "model": result.model,
            "checkpoint": result.checkpoint, "checkpoint_sha256": result.checkpoint_sha256,
            "data": {"dataset_sha256": result.dataset_sha256, "split_sha256": result.split_sha256,
                     "files": result.data},
            "test_accuracy": record.test_accuracy, "valid_accuracy": record.valid_accuracy,
            "valid_loss": record.valid_loss, "epochs": record.epochs,
            "settings": result.options.settings.to_dict(), "weights_sha256": weights_sha256,
            "duvae_version": __version__, "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def saved_budgets(folder: Path) -> list[int]:
    """The budgets with a saved probe in FOLDER/probes/, ascending."""
    names = (p.stem.removeprefix("labels-") for p in (Path(folder) / PROBES).glob("labels-*.json"))
    return sorted(int(n) for n in names if n.isdigit())


@dataclass(frozen=True)
class SavedProbe:
    weight: np.ndarray  # float64 (K, F)
    bias: np.ndarray  # float64 (K,)
    info: dict  # the JSON description
    path: Path  # the JSON file

    def predict(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(label (n,), probability of that label (n,)) under the probe's softmax, features (n, F)."""
        logits = features @ self.weight.T + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        probabilities = np.exp(logits)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        labels = probabilities.argmax(axis=1)
        return labels, probabilities[np.arange(len(labels)), labels]


def load_probe(folder: Path, budget: int | None, checkpoint: str, checkpoint_sha256: str) -> SavedProbe:
    """The saved probe of `budget` labels (None: the only one saved), checked against the run's
    current `checkpoint` and its sha256: a stale probe is refused in one line."""
    budgets = saved_budgets(folder)
    where = Path(folder) / PROBES
    if not budgets:
        raise UsageError(f"{where}: no saved probe; train one first: duvae classify RUN --labels N "
                         "(with --probes DIR: the --out DIR that classify wrote to)")
    if budget is None and len(budgets) > 1:
        raise UsageError(f"--labels: {where} holds probes for {', '.join(map(str, budgets))} labels; choose one")
    budget = budgets[0] if budget is None else budget
    if budget not in budgets:
        raise UsageError(f"--labels {budget}: no saved probe of that budget in {where} (saved: "
                         f"{', '.join(map(str, budgets))})")
    weights_path, info_path = probe_paths(folder, budget)
    info = _read_info(info_path)
    data = read_bytes(weights_path)
    if sha256_bytes(data) != info.get("weights_sha256"):
        raise DuvaeError(f"{weights_path}: not the weights {info_path.name} describes (sha256 differs); "
                         "train the probe again")
    _check_current(info, info_path, checkpoint, checkpoint_sha256)
    tensors, _ = read_weights(data, weights_path)
    return SavedProbe(tensors["weight"].double().numpy(), tensors["bias"].double().numpy(), info, info_path)


def _read_info(path: Path) -> dict:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DuvaeError(f"{path}: unreadable probe description ({type(exc).__name__})") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise DuvaeError(f"{path}: not a duvae probe description (format {FORMAT})")
    return info


def _check_current(info: dict, path: Path, checkpoint: str, sha256: str) -> None:
    if info.get("checkpoint") != checkpoint:
        raise UsageError(f"{path}: a probe of the run's {info.get('checkpoint')} checkpoint; use --checkpoint "
                         f"{info.get('checkpoint')}")
    if info.get("checkpoint_sha256") != sha256:
        raise DuvaeError(f"{path}: stale: trained on the features of checkpoint {checkpoint} "
                         f"{str(info.get('checkpoint_sha256'))[:12]}, which is now {sha256[:12]}; train it again "
                         f"with duvae classify --labels {info.get('labels')}")
