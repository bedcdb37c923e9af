"""A toy Omniglot-like image dataset and a run trained on it, shared by the image tests.

3 alphabets of 2, 3 and 4 characters, 20 drawings each (drawers 1-15 train pool, 16-20 test), split
exactly as `duvae prepare omniglot` splits (`split_train_pool` with the recorded seed): train keeps
grey levels, valid and test are binarised once. Each character is a blurred random template, each
drawing a noisy copy, so characters are separable. `DRAWERS` keeps every stored image's drawer (the
file has none), so tests can check the recovered drawer order.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from duvae_cli.data.images import binarize, image_split
from duvae_cli.prepare.omniglot import split_train_pool
from duvae_cli.data.store import Built, load_dataset, write_dataset
from duvae_cli.config.resolve import resolve_config
from duvae_cli.train.loop import train
from duvae_cli.runs.run import manifest, new_run_dir, write_json

CHARACTERS = (2, 3, 4)  # per alphabet
SEED = 11
DRAWERS: dict[str, np.ndarray] = {}  # split -> drawer (1..20) of every stored image


def _drawings(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Every drawing in (character, drawer) order: grey uint8 images and their labels."""
    grey, alphabet, character, labels, drawer = [], [], [], [], []
    for a, count in enumerate(CHARACTERS):
        for c in range(count):
            template = rng.random((7, 7)) < 0.35
            ink = np.kron(template, np.ones((4, 4)))  # 28x28 strokes
            for d in range(1, 21):
                noisy = np.clip(0.85 * ink + 0.1 * rng.random((28, 28)), 0, 1)
                grey.append(np.rint(255 * noisy).astype(np.uint8))
                alphabet.append(a), character.append(c), labels.append(sum(CHARACTERS[:a]) + c)
                drawer.append(d)
    return {"grey": np.stack(grey), "alphabet": np.array(alphabet), "character": np.array(character),
            "labels": np.array(labels), "drawer": np.array(drawer)}


def write_toy_images(root: Path, name: str = "toyimg", labelled: bool = True) -> Path:
    raw = _drawings(np.random.default_rng(0))
    rng = np.random.Generator(np.random.PCG64(SEED))
    pool, test = np.flatnonzero(raw["drawer"] <= 15), np.flatnonzero(raw["drawer"] > 15)
    train_ranks, valid_ranks = split_train_pool(len(pool), rng)
    parts = {"train": (pool[train_ranks], False), "valid": (pool[valid_ranks], True), "test": (test, True)}
    splits = {}
    for split, (index, binary) in parts.items():
        images = binarize(raw["grey"][index], rng) if binary else raw["grey"][index]
        labels = {k: raw[k][index] for k in ("labels", "alphabet", "character")} if labelled else {}
        splits[split] = image_split(images, binary, split, **labels)
        DRAWERS[split] = raw["drawer"][index]
    attrs = {"seed": SEED, "alphabets": json.dumps(["Aa", "Bb", "Cc"])}
    built = Built(kind="image", splits=splits, num_labels=sum(CHARACTERS) if labelled else 0, attrs=attrs)
    path = root / name / "dataset.h5"
    write_dataset(path, name, built)
    return path


def build_image_run(root: Path, model: str = "du", epochs: int = 1, labelled: bool = True, **overrides) -> Path:
    """A full run directory (config, manifest, checkpoints) of a small-size model on the toy images."""
    name = "toyimg" if labelled else "toyimg-unlabelled"
    path = root / "data" / name / "dataset.h5"
    if not path.exists():
        write_toy_images(root / "data", name, labelled)
    dataset = load_dataset(path)
    flags = dict(dataset=name, size="small", latent_dim=4, epochs=epochs, batch_size=25, warm_up=0.5,
                 eval_batch_size=64, device="cpu", optimizer="adam", lr=1e-3, **overrides)
    config = resolve_config(name, model, flags, sets=[f"data_root={root / 'data'}"])
    run_dir = new_run_dir(config, root / "runs", root / "runs" / f"{name}-{model}")
    write_json(run_dir / "config.json", config.to_dict())
    write_json(run_dir / "manifest.json", manifest(config, path, dataset.sha256, "cpu"))
    train(config, dataset, run_dir)
    return run_dir


_BUILT: dict[str, Path] = {}


@pytest.fixture(scope="session")
def image_run(tmp_path_factory) -> Path:
    """A DU-VAE run on the toy images (session-wide: treat as read-only; copy before writing)."""
    if "du" not in _BUILT:
        _BUILT["du"] = build_image_run(tmp_path_factory.mktemp("toyimg"), "du")
    return _BUILT["du"]


def test_toy_split_matches_prepare(tmp_path):
    dataset = load_dataset(write_toy_images(tmp_path))
    sizes = {name: len(split) for name, split in dataset.splits.items()}
    assert sizes == {"train": 122, "valid": 13, "test": 45}  # 135 pool drawings, a tenth valid
    assert not dataset.splits["train"].binarized and dataset.splits["test"].binarized
