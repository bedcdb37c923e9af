"""A toy labelled corpus and a run directory trained on it, shared by the probe, viz and report tests.

The corpus has 3 classes whose sentences draw their words from 3 disjoint bands of the vocabulary,
plus a true 2-D latent `z` (like the synthetic dataset) and two official label-budget subsets.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from duvae_cli.data.store import SPECIALS, Built, SplitData, load_dataset, write_dataset
from duvae_cli.config.resolve import resolve_config
from duvae_cli.train.loop import train
from duvae_cli.runs.run import manifest, new_run_dir, write_json

N_CLASSES, BAND = 3, 8
CENTRES = np.array([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.0]])


def toy_split(n: int, rng: np.random.Generator, labelled: bool = True) -> SplitData:
    labels = rng.integers(0, N_CLASSES, n)
    lengths = rng.integers(4, 9, n)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    band = labels.repeat(lengths)
    tokens = (len(SPECIALS) + band * BAND + rng.integers(0, BAND, offsets[-1])).astype(np.int32)
    arrays = {"tokens": tokens, "offsets": offsets,
              "z": (CENTRES[labels] + 0.4 * rng.standard_normal((n, 2))).astype(np.float32)}
    if labelled:
        arrays["labels"] = labels.astype(np.int64)
    return SplitData(arrays)


def write_toy_dataset(root: Path, name: str = "toy", labelled: bool = True, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    splits = {"train": toy_split(300, rng, labelled), "valid": toy_split(90, rng, labelled),
              "test": toy_split(90, rng, labelled)}
    subsets = {"20": toy_split(20, rng), "40": toy_split(40, rng)} if labelled else {}
    vocab = [*SPECIALS, *(f"w{i}" for i in range(N_CLASSES * BAND))]
    built = Built(kind="text", splits=splits, subsets=subsets, vocab=vocab, tokenizer="word",
                  num_labels=N_CLASSES if labelled else 0)
    path = root / name / "dataset.h5"
    write_dataset(path, name, built)
    return path


def build_toy_run(root: Path, model: str = "du", latent_dim: int = 2, epochs: int = 2,
                  labelled: bool = True, run_name: str | None = None, **overrides) -> Path:
    """Train a tiny model on the toy corpus into a full run directory (config, manifest, checkpoints)."""
    data_root = root / "data"
    name = "toy" if labelled else "toy-unlabelled"
    path = data_root / name / "dataset.h5"
    if not path.exists():
        write_toy_dataset(data_root, name, labelled)
    dataset = load_dataset(path)
    flags = dict(dataset=name, embed_dim=16, hidden_dim=16, latent_dim=latent_dim, epochs=epochs,
                 batch_size=32, warm_up=1.0, eval_batch_size=64, device="cpu", **overrides)
    config = resolve_config(name, model, flags, sets=[f"data_root={data_root}"])
    run_dir = new_run_dir(config, root / "runs", root / "runs" / run_name if run_name else None)
    write_json(run_dir / "config.json", config.to_dict())
    write_json(run_dir / "manifest.json", manifest(config, path, dataset.sha256, "cpu"))
    train(config, dataset, run_dir)
    return run_dir


_BUILT: dict[str, Path] = {}  # one toy run per session, whichever test module asks first


@pytest.fixture(scope="session")
def toy_run(tmp_path_factory) -> Path:
    """A DU-VAE run with a 2-D latent space on the toy corpus (session-wide: treat as read-only)."""
    if "du-2d" not in _BUILT:
        _BUILT["du-2d"] = build_toy_run(tmp_path_factory.mktemp("toy"), "du", run_name="du-2d")
    return _BUILT["du-2d"]


def test_toy_run_is_a_complete_run_directory(toy_run):
    config = json.loads((toy_run / "config.json").read_text())
    assert config["model"] == "du" and config["latent_dim"] == 2
    assert (toy_run / "checkpoints" / "best.safetensors").exists()
    assert len((toy_run / "history.csv").read_text().splitlines()) == 1 + 2
