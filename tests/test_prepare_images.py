"""Omniglot (npz, zip of PNGs, chardata.mat) and binarized MNIST (npz, .amat) from tiny fixtures."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from duvae_cli.data import load_dataset
from duvae_cli.prepare import PrepareOptions, prepare_dataset
from duvae_cli.prepare.omniglot import alphabets, area_matrix, downsample

# Two background characters of Arcadian (Lake ids 1, 2) and one evaluation character of Angelic (965).
BACKGROUND_IDS, EVALUATION_IDS = (0, 1), (0,)


def fake_characters(n_chars: int, seed: int) -> np.ndarray:
    """bool (n_chars, 20, 105, 105), True = background, with a random ink blob per image."""
    rng = np.random.default_rng(seed)
    images = np.ones((n_chars, 20, 105, 105), dtype=bool)
    for c in range(n_chars):
        for d in range(20):
            r, k = rng.integers(0, 80, size=2)
            images[c, d, r:r + 25, k:k + 10] = False
    return images


def write_npz(folder: Path) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    parts = {"background": fake_characters(2, 1), "evaluation": fake_characters(1, 2)}
    for part, images in parts.items():
        labels = np.repeat(np.arange(len(images))[:, None], 20, axis=1)
        np.savez(folder / f"images_{part}.npz", images=images, labels=labels)
    return parts


def write_zips(folder: Path, parts: dict[str, np.ndarray]) -> None:
    """Lake's layout: images_PART/ALPHABET/characterNN/IIII_DD.png, 1-bit PNGs, white background."""
    from PIL import Image

    names = {"background": ("Arcadian", 1), "evaluation": ("Angelic", 965)}
    for part, images in parts.items():
        alphabet, first = names[part]
        with zipfile.ZipFile(folder / f"images_{part}.zip", "w") as zf:
            for c, drawers in enumerate(images):
                for d, image in enumerate(drawers):
                    png = io.BytesIO()
                    Image.fromarray(image).convert("1").save(png, format="PNG")
                    zf.writestr(f"images_{part}/{alphabet}/character{c + 1:02d}/{first + c:04d}_{d + 1:02d}.png",
                                png.getvalue())


def prepare(name: str, source: Path, out: Path, **kwargs):
    summary = prepare_dataset(name, PrepareOptions(source=str(source), out=out, **kwargs))
    return summary, load_dataset(summary.path)


def test_area_matrix_is_an_exact_area_average():
    a = area_matrix()
    assert a.shape == (28, 105) and np.allclose(a.sum(axis=1), 1.0)
    assert np.allclose(a.sum(axis=0), 28 / 105)  # every input pixel is spread over exactly its area
    ink = np.zeros((1, 105, 105))
    ink[0, :15, :15] = 1.0  # exactly 4 x 4 output cells (15 = 4 x 3.75)
    grey = downsample(ink)[0]
    assert (grey[:4, :4] == 255).all() and grey[4:, :].sum() == 0 and grey[:, 4:].sum() == 0
    ink[0, :] = 0
    ink[0, :, 0] = 1.0  # one input column covers 1/3.75 of the first output column
    assert (downsample(ink)[0, :, 0] == round(255 / 3.75)).all()


def test_omniglot_npz_splits_labels_and_binarisation(tmp_path):
    parts = write_npz(tmp_path / "src")
    summary, ds = prepare("omniglot", tmp_path / "src", tmp_path / "out")
    train, valid, test = ds.splits["train"], ds.splits["valid"], ds.splits["test"]
    assert (len(train), len(valid), len(test)) == (41, 4, 15)  # 3 chars x 15 drawers, a tenth held out
    assert not train.binarized and valid.binarized and test.binarized
    assert set(np.unique(valid.images)) <= {0, 1} and train.images.max() > 1
    assert sorted(set(test.labels)) == [0, 1, 964]  # Lake id - 1
    arcadian, angelic = [a.name for a in alphabets()].index("Arcadian"), [a.name for a in alphabets()].index("Angelic")
    assert list(np.unique(test.alphabet)) == [arcadian, angelic] and sorted(set(test.character)) == [0, 1]
    assert ds.num_labels == 1623 and ds.kind == "image" and train.images.shape[1:] == (28, 28)
    grey = downsample(~parts["background"][0, 15:16])[0]  # character 1, drawer 16; ink = 1
    assert grey.max() == 255 and (test.images[0][grey == 0] == 0).all() and (test.images[0][grey == 255] == 1).all()
    assert summary.to_dict()["splits"][0]["binarized"] is False


def test_omniglot_zip_of_pngs_matches_npz(tmp_path):
    parts = write_npz(tmp_path / "npz")
    (tmp_path / "zip").mkdir()
    write_zips(tmp_path / "zip", parts)
    _, from_npz = prepare("omniglot", tmp_path / "npz", tmp_path / "a")
    _, from_zip = prepare("omniglot", tmp_path / "zip", tmp_path / "b")
    for split in ("train", "valid", "test"):
        a, b = from_npz.splits[split], from_zip.splits[split]
        assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)
        assert np.array_equal(a.alphabet, b.alphabet) and np.array_equal(a.character, b.character)


def test_chardata_mat_comes_out_upright(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    image = np.zeros((28, 28))
    image[2:10, 3] = 1.0  # a vertical bar near the left edge
    columns = image.T.reshape(784, 1)  # Burda stores each image column-major
    data = np.repeat(columns, 30, axis=1)
    target = np.zeros((50, 30))
    target[[0] * 20 + [1] * 10, np.arange(30)] = 1
    scipy_io.savemat(tmp_path / "chardata.mat", {
        "data": data, "testdata": data[:, :5], "target": target, "testtarget": target[:, :5],
        "targetchar": np.array([[1, 2] * 15]), "testtargetchar": np.array([[1, 2, 1, 2, 1]])})
    _, ds = prepare("omniglot", tmp_path / "chardata.mat", tmp_path / "out")
    assert np.array_equal(ds.splits["train"].images[0], np.rint(image * 255).astype(np.uint8))
    assert (len(ds.splits["train"]), len(ds.splits["valid"]), len(ds.splits["test"])) == (27, 3, 5)
    assert ds.num_labels == 4 and set(ds.splits["test"].labels) == {0, 1}


def test_mnist_npz_and_amat_agree(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {k: rng.integers(0, 2, size=(n, 784), dtype=np.uint8) for k, n in (("train", 6), ("valid", 2), ("test", 3))}
    (tmp_path / "npz").mkdir()
    np.savez(tmp_path / "npz" / "binarized_mnist.npz", **arrays)
    (tmp_path / "amat").mkdir()
    for split, array in arrays.items():
        lines = "".join(" ".join(map(str, row)) + "\n" for row in array)
        (tmp_path / "amat" / f"binarized_mnist_{split}.amat").write_text(lines)
    _, a = prepare("mnist", tmp_path / "npz", tmp_path / "a")
    _, b = prepare("mnist", tmp_path / "amat", tmp_path / "b")
    for split, array in arrays.items():
        assert np.array_equal(a.splits[split].images, array.reshape(-1, 28, 28))  # row-major
        assert np.array_equal(b.splits[split].images, a.splits[split].images)
        assert a.splits[split].binarized and a.splits[split].labels is None
    assert a.num_labels == 0
