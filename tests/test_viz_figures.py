"""`duvae visualize`: every kind writes its file from saved artifacts, reproducibly; the maths behind
the latent figure (aggregated posterior, projection) and the grid's cell means."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from test_probe_toyrun import toy_run  # noqa: F401  (fixture)

from duvae_cli.viz.artifacts import load_posteriors
from duvae_cli.viz.grid import grid_values
from duvae_cli.viz.latent import mixture_density, project

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def run(toy_run, tmp_path):  # noqa: F811
    return shutil.copytree(toy_run, tmp_path / toy_run.name)


@pytest.mark.parametrize("kind", ["latent", "curves", "dims"])
def test_each_figure_is_a_png_in_the_run_and_reproducible(duvae, run, kind):
    first = duvae("visualize", run, "--kind", kind, "--device", "cpu")
    assert first.code == 0, first.stderr
    path = Path(first.stdout.strip())
    assert path == run / "figures" / f"{kind}.png"
    data = path.read_bytes()
    assert data.startswith(PNG) and len(data) > 10_000
    assert duvae("visualize", run, "--kind", kind, "--device", "cpu").code == 0
    assert path.read_bytes() == data  # same bytes twice: no timestamps or version strings


def test_samples_kind_writes_reconstructions_and_prior_samples(duvae, run):
    result = duvae("visualize", run, "--kind", "samples", "--n", "3", "--beam", "3", "--json", "--device", "cpu")
    assert result.code == 0, result.stderr
    path = Path(json.loads(result.stdout)["files"][0])
    text = path.read_text()
    assert "## reconstructions" in text and "## from the prior" in text
    assert text.count("input:") == 3 and text.count("beam(3)") == 3
    duvae("visualize", run, "--kind", "samples", "--n", "3", "--beam", "3", "--device", "cpu")
    assert path.read_text() == text


@pytest.mark.parametrize("suffix, magic", [(".svg", b"<?xml"), (".pdf", b"%PDF")])
def test_vector_formats_follow_the_extension(duvae, run, tmp_path, suffix, magic):
    out = tmp_path / f"curves{suffix}"
    assert duvae("visualize", run, "--kind", "curves", "--out", out).code == 0
    data = out.read_bytes()
    assert data.startswith(magic)
    duvae("visualize", run, "--kind", "curves", "--out", out)
    assert out.read_bytes() == data


def _fake_run(root: Path, name: str, gamma: float, p: float, mi: float | None) -> Path:
    """A run directory with only what `--kind grid` reads: config.json and metrics.csv or history.csv."""
    run = root / name
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"dataset": "toy", "model": "du", "gamma": gamma, "p": p}))
    if mi is None:  # history only: the best-validation epoch's val_mi is used
        (run / "history.csv").write_text("epoch,val_loss,val_mi\n1,50.0,0.5\n2,40.0,0.9\n3,45.0,1.5\n")
    else:
        (run / "metrics.csv").write_text("run,dataset,model,split,metric,value,estimator,n_samples,seed\n"
                                         f"{name},toy,du,test,mi,{mi},whole_set,1,0\n"
                                         f"{name},toy,du,valid,mi,99,whole_set,1,0\n")
    return run


def test_grid_averages_runs_of_a_cell_and_falls_back_to_history(duvae, tmp_path):
    runs = [_fake_run(tmp_path, "a", 0.5, 0.8, 1.0), _fake_run(tmp_path, "b", 0.5, 0.8, 2.0),
            _fake_run(tmp_path, "c", 1.0, 0.8, 4.0), _fake_run(tmp_path, "d", 0.5, 0.9, None)]
    values = grid_values(runs, "mi")
    assert values["gammas"] == [0.5, 1.0] and values["ps"] == [0.8, 0.9]
    np.testing.assert_allclose(values["mean"], [[1.5, 0.9], [4.0, np.nan]])
    np.testing.assert_array_equal(values["count"], [[2, 1], [1, 0]])
    out = tmp_path / "grid.png"
    result = duvae("visualize", *runs, "--kind", "grid", "--metric", "mi", "--out", out)
    assert result.code == 0, result.stderr
    assert out.read_bytes().startswith(PNG)


def test_grid_rejects_runs_without_gamma_and_p(duvae, tmp_path):
    run = _fake_run(tmp_path, "vae", 0.5, 0.8, 1.0)
    (run / "config.json").write_text(json.dumps({"dataset": "toy", "model": "vae", "gamma": None, "p": None}))
    result = duvae("visualize", run, "--kind", "grid")
    assert result.code == 1 and "gamma and p" in result.stderr


def test_posteriors_stored_by_evaluate_are_used_only_for_the_same_checkpoint(run):
    computed = load_posteriors(run, device="cpu")
    assert computed.source == "checkpoint"
    group = f"test/best-{computed.checkpoint_sha256[:12]}"
    with h5py.File(run / "metrics.h5", "w") as f:
        f.create_dataset(f"{group}/mean", data=computed.mean + 1.0)
        f.create_dataset(f"{group}/logvar", data=computed.logvar)
        f[group].attrs["checkpoint_sha256"] = computed.checkpoint_sha256
    stored = load_posteriors(run, device="cpu")
    assert stored.source == "metrics.h5"
    np.testing.assert_allclose(stored.mean, computed.mean + 1.0)
    with h5py.File(run / "metrics.h5", "a") as f:
        f[group].attrs["checkpoint_sha256"] = "0" * 64
    assert load_posteriors(run, device="cpu").source == "checkpoint"


def test_aggregated_posterior_is_a_density():
    rng = np.random.default_rng(0)
    mean, logvar = 0.5 * rng.standard_normal((50, 2)), np.log(rng.uniform(0.05, 0.3, (50, 2)))
    plane = project(mean, logvar)
    ticks = np.linspace(-4, 4, 241)
    gx, gy = np.meshgrid(ticks, ticks)
    density = mixture_density(plane.points, plane.covs, np.column_stack([gx.ravel(), gy.ravel()]))
    assert density.sum() * (ticks[1] - ticks[0]) ** 2 == pytest.approx(1.0, abs=1e-3)
    single = mixture_density(np.zeros((1, 2)), np.eye(2)[None], np.zeros((1, 2)))
    assert single[0] == pytest.approx(1 / (2 * np.pi))


def test_projection_of_a_planar_latent_keeps_distances_and_variances():
    """Means in a 2-D plane of a 5-D space: the PCs recover that plane, and a posterior covariance that
    is isotropic stays isotropic with the same variance."""
    rng = np.random.default_rng(1)
    basis = np.linalg.qr(rng.standard_normal((5, 2)))[0]  # orthonormal (5, 2)
    coords = rng.standard_normal((200, 2)) * [2.0, 0.5]
    plane = project(coords @ basis.T, np.full((200, 5), np.log(0.1)))
    distances = lambda x: np.linalg.norm(x[:, None] - x[None], axis=-1)  # noqa: E731
    np.testing.assert_allclose(distances(plane.points), distances(coords), atol=1e-8)
    np.testing.assert_allclose(plane.covs, np.broadcast_to(0.1 * np.eye(2), (200, 2, 2)), atol=1e-12)
    assert plane.axes[0].startswith("PC1")
