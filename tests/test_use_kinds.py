"""`encode` and `generate` on an IAF run (zT) and an image run (npz input, PNG grid)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from test_images_toyrun import image_run  # noqa: F401  (fixture)
from test_probe_toyrun import build_toy_run
from duvae_cli.probe.features import probe_features
from duvae_cli.runs.load import load_trained


@pytest.fixture(scope="module")
def iaf_run(tmp_path_factory):
    return build_toy_run(tmp_path_factory.mktemp("use-iaf"), "du-iaf", epochs=1, run_name="du-iaf")


def test_encode_of_a_flow_run_gives_zT_and_the_probe_features(iaf_run, tmp_path, duvae):
    trained = load_trained(iaf_run)
    result = duvae("encode", iaf_run, trained.dataset.path, "--split", "test", "--out", tmp_path / "f.npy", "-q")
    assert result.code == 0, result.stderr
    rows = np.load(tmp_path / "f.npy")
    features = probe_features(trained.model, trained.dataset.splits["test"], None, trained.config.eval_batch_size)
    both = np.concatenate([rows["mean"], rows["zT"]], axis=1).astype(np.float64)
    assert np.array_equal(both, features)  # the probe of a flow run reads [mu0 ; zT]
    assert not np.array_equal(rows["zT"], rows["mean"])


@pytest.mark.slow  # PixelCNN sampling pixel by pixel
def test_image_run_encodes_npz_and_draws_a_generate_grid(image_run, tmp_path, duvae):
    run = tmp_path / "run"
    shutil.copytree(image_run, run)
    trained = load_trained(run)
    images = trained.dataset.splits["test"].images[:5]
    np.savez(tmp_path / "imgs.npz", images=images)
    result = duvae("encode", run, tmp_path / "imgs.npz", "--out", tmp_path / "i.h5", "-q")
    assert result.code == 0, result.stderr
    features = probe_features(trained.model, trained.dataset.splits["test"], np.arange(5), 128)
    import h5py

    with h5py.File(tmp_path / "i.h5") as f:
        assert np.allclose(f["mean"][()], features, atol=1e-6)
    png = duvae("generate", run, "--reconstruct", tmp_path / "imgs.npz", "--out", tmp_path / "g.png", "-q")
    assert png.code == 0, png.stderr
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"
    sampled = duvae("generate", run, "--sample", "3", "-q")
    assert sampled.code == 0 and sampled.stdout.strip().endswith("generate-sample.png")
    text = duvae("generate", run, "--interpolate", "a", "b")
    assert text.code == 2 and "text runs only" in text.stderr
