"""Burda et al.'s 28x28 Omniglot, `chardata.mat` (the IWAE repository; SA-VAE and DU-VAE used it).

MATLAB arrays: `data` (784, 24345) and `testdata` (784, 8070), grey levels in [0, 1], each column an
image stored column-major (so it must be transposed to come out upright, reference-spec §1.4);
optional `target`/`testtarget` (50, n) one-hot alphabet and `targetchar`/`testtargetchar` (1, n)
1-based character index within the alphabet. Burda's alphabet order is his own, not alphabets.csv's:
`alphabet` keeps his index, and `labels` numbers characters alphabet by alphabet in that order.
Needs scipy, imported only here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from duvae_cli.errors import DuvaeError


def read_chardata(path: Path) -> dict:
    """The fields of omniglot._Raw: grey, is_test, labels, alphabet, character, files, num_labels, notes."""
    mat = _loadmat(path)
    parts = [_images(path, mat, "data"), _images(path, mat, "testdata")]
    grey = np.concatenate(parts)
    is_test = np.repeat([False, True], [len(parts[0]), len(parts[1])])
    labels = alphabet = character = None
    notes = ["chardata.mat: Burda's 28x28 resampling and his 24,345 / 8,070 train/test split"]
    if all(key in mat for key in ("target", "testtarget", "targetchar", "testtargetchar")):
        alphabet = np.concatenate([_alphabet(path, mat, "target"), _alphabet(path, mat, "testtarget")])
        character = np.concatenate([np.asarray(mat[k]).reshape(-1) for k in ("targetchar", "testtargetchar")])
        character = character.astype(np.int64) - 1
        sizes = np.zeros(alphabet.max() + 1, dtype=np.int64)
        np.maximum.at(sizes, alphabet, character + 1)
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        labels = offsets[alphabet] + character
        num_labels = int(sizes.sum())
    else:
        num_labels = 0
        notes.append("chardata.mat has no target/targetchar arrays: no labels written")
    return dict(grey=grey, is_test=is_test, labels=labels, alphabet=alphabet, character=character,
                files=[path], num_labels=num_labels, notes=notes)


def _loadmat(path: Path) -> dict:
    try:
        import scipy.io
    except ImportError:
        raise DuvaeError(f"{path}: reading chardata.mat needs scipy (pip install scipy)") from None
    try:
        return scipy.io.loadmat(path)
    except (ValueError, OSError, TypeError, NotImplementedError) as exc:
        raise DuvaeError(f"{path}: not a readable MATLAB file ({exc})".replace("\n", " ")) from None


def _images(path: Path, mat: dict, key: str) -> np.ndarray:
    if key not in mat:
        raise DuvaeError(f"{path}: no {key!r} array (expected Burda's data/testdata)")
    data = np.asarray(mat[key], dtype=np.float64)
    if data.ndim != 2 or data.shape[0] != 784 or data.min() < 0 or data.max() > 1:
        raise DuvaeError(f"{path}: {key!r} has shape {data.shape}; expected (784, n) grey levels in [0, 1]")
    images = data.T.reshape(-1, 28, 28).transpose(0, 2, 1)  # column-major images -> upright
    return np.rint(images * 255).astype(np.uint8)


def _alphabet(path: Path, mat: dict, key: str) -> np.ndarray:
    target = np.asarray(mat[key])
    if target.ndim == 2 and target.shape[0] > 1:  # one-hot (alphabets, n)
        return target.argmax(axis=0).astype(np.int64)
    return target.reshape(-1).astype(np.int64) - 1  # 1-based indexes
