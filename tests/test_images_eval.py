"""Evaluation, the per-alphabet probe and the figures on image runs (the toy run of test_images_toyrun)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from test_images_toyrun import CHARACTERS, DRAWERS, image_run, write_toy_images  # noqa: F401

from duvae_cli.io import sha256_file
from duvae_cli.prepare.omniglot import pool_positions
from duvae_cli.data.store import load_dataset
from duvae_cli.metrics.evaluate import EvalOptions, score_examples, summarise
from duvae_cli.metrics.iw import BatchNoise, importance_weights, plan_chunks
from duvae_cli.metrics.scoring import make_scorer
from duvae_cli.models.pixelcnn import PixelCNNDecoder
from duvae_cli.probe.alphabets import AlphabetOptions, Pool, probe_alphabets, rank_within, train_pool
from duvae_cli.data.batching import ImageBatches
from duvae_cli.runs.load import load_trained

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def run(image_run, tmp_path):  # noqa: F811
    return shutil.copytree(image_run, tmp_path / image_run.name)


def test_iw_nll_is_at_most_the_elbo_on_images(image_run):  # noqa: F811
    trained = load_trained(image_run)
    examples = ImageBatches(trained.dataset.splits["test"])
    options = EvalOptions(iw_samples=8, batch_size=16)
    results = score_examples(trained.model, examples, options)
    metrics = summarise(results, options, examples.lengths)["metrics"]
    assert metrics["iw_nll"] <= metrics["elbo_nll"]
    assert "ppl" not in metrics and "n_tokens" not in metrics
    # per example, exactly: -log mean_k w_k <= -mean_k log w_k (Jensen), same samples
    model, rows = trained.model.eval(), np.arange(10)
    with torch.no_grad():
        batch = examples.batch(rows)
        mean, logvar = model.posterior(batch)
        scorer = make_scorer(model.decoder)
        chunks = plan_chunks(10, 16, lambda r, e: True, max_rows=64)
        weights = importance_weights(scorer, batch, mean, logvar, BatchNoise(0, rows, 16, 4), chunks)
    assert torch.all(-weights.iw_log_likelihood() <= -weights.log_weights.mean(1) + 1e-9)


def test_evaluate_cli_writes_image_metrics_without_ppl(duvae, run):
    result = duvae("evaluate", run, "--iw-samples", "4", "--device", "cpu", "--json")
    assert result.code == 0, result.stderr
    metrics = json.loads(result.stdout)["metrics"]
    assert metrics["iw_nll"]["estimator"] == "iw" and metrics["n_examples"]["value"] == 45
    names = {row["metric"] for row in csv.DictReader((run / "metrics.csv").open())}
    assert "iw_nll" in names and not names & {"ppl", "iw_ppl", "n_tokens"}


def test_train_pool_is_put_back_in_drawer_order(tmp_path):
    dataset = load_dataset(write_toy_images(tmp_path))
    positions = pool_positions(dataset)
    assert positions is not None
    drawers = np.empty(135, dtype=np.int64)
    drawers[positions[0]], drawers[positions[1]] = DRAWERS["train"], DRAWERS["valid"]
    assert drawers.tolist() == list(range(1, 16)) * sum(CHARACTERS)
    pool, how = train_pool(dataset, seed=0)
    assert how == "recovered" and pool.binarized and set(np.unique(pool.images)) <= {0, 1}
    assert rank_within(pool.alphabet, pool.character).tolist() == list(range(15)) * sum(CHARACTERS)
    wrong = dataset.__class__(**{**vars(dataset), "attrs": {**dataset.attrs, "seed": 12}})
    assert pool_positions(wrong) is None  # another seed does not fit the stored labels
    assert train_pool(wrong, seed=0)[1] == "approximate"


def test_each_alphabet_gets_its_own_probe_on_the_first_k_drawings():
    """Features = one-hot character codes + noise: every probe is perfect, and it sees k per character."""
    rng = np.random.default_rng(0)
    alphabet = np.repeat([0, 0, 1, 1, 1], 15)
    character = np.repeat([0, 1, 0, 1, 2], 15)

    def features(n_per_char: int) -> np.ndarray:
        codes = np.eye(5)[np.repeat(np.arange(5), n_per_char)]
        return 5 * codes + 0.1 * rng.standard_normal(codes.shape)

    train = Pool(features(15), alphabet, character, np.tile(np.arange(15), 5))
    test = Pool(features(5), np.repeat([0, 0, 1, 1, 1], 5), np.repeat([0, 1, 0, 1, 2], 5), np.zeros(25, int))
    records = probe_alphabets(train, test, 3, ["A", "B"], AlphabetOptions())
    assert [(r.name, r.n_characters, r.n_train, r.n_test) for r in records] == [("A", 2, 6, 10), ("B", 3, 9, 15)]
    assert all(r.accuracy == 1.0 for r in records)


def test_classify_cli_on_omniglot_like_run(duvae, run):
    result = duvae("classify", run, "--per-class", "2", "--per-class", "5", "--device", "cpu", "--json")
    assert result.code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["drawer_order"] == "recovered"
    summary = {r["per_class"]: r for r in payload["results"]}
    assert summary[2]["n_train"] == 2 * sum(CHARACTERS) and summary[5]["n_train"] == 5 * sum(CHARACTERS)
    assert summary[5]["alphabets"] == 3 and summary[5]["n_test"] == 45
    for r in summary.values():  # the character-weighted mean lies within the alphabets' range
        accs = [a["accuracy"] for a in payload["alphabets"] if a["per_class"] == r["per_class"]]
        assert min(accs) <= r["accuracy_char_weighted"] <= max(accs)
    rows = list(csv.DictReader((run / "probe.csv").open()))
    means = [r for r in rows if r["metric"] == "accuracy"]
    assert sorted(r["labels"] for r in means) == ["2", "5"]
    assert len([r for r in rows if r["metric"] == "alphabet_accuracy"]) == 6
    assert duvae("classify", run, "--labels", "10").code == 2


def test_classify_on_an_unlabelled_image_dataset_fails_in_one_line(duvae, run, tmp_path):
    path = write_toy_images(tmp_path / "data", "mnist", labelled=False)
    info = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps({**info, "data_path": str(path), "data_sha256": sha256_file(path)}))
    result = duvae("classify", run, "--device", "cpu")
    assert result.code == 1
    assert "mnist has no labels" in result.stderr and result.stderr.count("\n") == 1


@pytest.mark.parametrize("kind", ["latent", "dims"])
def test_latent_and_dims_figures_of_an_image_run(duvae, run, kind):
    result = duvae("visualize", run, "--kind", kind, "--device", "cpu")
    assert result.code == 0, result.stderr
    assert Path(result.stdout.strip()).read_bytes().startswith(PNG)


def _quick_sampler(self, z, generator=None):
    """Stands in for pixel-by-pixel sampling (tested on its own in test_images_models): seeded noise."""
    return (torch.rand(z.shape[0], 1, 28, 28, generator=generator) < 0.2).float()


@pytest.mark.parametrize("sampler", [pytest.param("quick"), pytest.param("real", marks=pytest.mark.slow)])
def test_samples_of_an_image_run_are_a_reproducible_png(duvae, run, monkeypatch, sampler):
    if sampler == "quick":
        monkeypatch.setattr(PixelCNNDecoder, "sample", _quick_sampler)
    result = duvae("visualize", run, "--kind", "samples", "--n", "3", "--device", "cpu")
    assert result.code == 0, result.stderr
    path = Path(result.stdout.strip())
    assert path == run / "figures" / "samples.png"
    data = path.read_bytes()
    assert data.startswith(PNG)
    assert duvae("visualize", run, "--kind", "samples", "--n", "3", "--device", "cpu").code == 0
    assert path.read_bytes() == data
