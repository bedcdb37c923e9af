"""`duvae classify` end to end on a toy run: official subsets, outputs, repeats, and one-line failures."""

from __future__ import annotations

import csv
import json
import shutil

import h5py
import numpy as np
import pytest
from test_probe_toyrun import toy_run, write_toy_dataset  # noqa: F401  (fixture)

from duvae_cli.io import sha256_file
from duvae_cli.probe import ClassifyOptions, classify_run
from duvae_cli.probe.outputs import COLUMNS


@pytest.fixture
def run(toy_run, tmp_path):  # noqa: F811
    """A private copy of the toy run (classify writes into the run directory)."""
    return shutil.copytree(toy_run, tmp_path / toy_run.name)


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_default_budgets_are_the_official_subsets(duvae, run):
    result = duvae("classify", run, "--json", "--quiet")
    assert result.code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert [r["labels"] for r in payload["results"]] == [20, 40]
    assert {r["subset"] for r in payload["results"]} == {"official"}
    assert all(r["n_train"] == r["labels"] for r in payload["results"])


def test_official_subset_sentences_are_the_ones_probed(run, monkeypatch):
    """The probe must train on subsets/<N> itself, not on a draw from train."""
    import duvae_cli.probe.classify as classify

    seen = []
    real = classify.fit_probe
    monkeypatch.setattr(classify, "fit_probe", lambda x, y, *a, **k: seen.append((x, y)) or real(x, y, *a, **k))
    from duvae_cli.data.store import load_dataset

    dataset = load_dataset(json.loads((run / "manifest.json").read_text())["data_path"])
    classify_run(run, ClassifyOptions(budgets=(40, 100), device="cpu"))
    np.testing.assert_array_equal(seen[0][1], dataset.subsets["40"].labels)
    assert len(seen[1][1]) == 100  # no subset of 100: drawn from train
    assert np.bincount(seen[1][1]).min() >= 25  # stratified over the 3 classes


def test_outputs_are_tidy_and_keep_other_groups_of_metrics_h5(duvae, run):
    with h5py.File(run / "metrics.h5", "w") as f:  # what `duvae evaluate` would have left
        f.create_dataset("test/best-abc/mean", data=np.zeros((3, 2)))
    result = duvae("classify", run, "--labels", "100", "--repeats", "3", "--quiet")
    assert result.code == 0, result.stderr
    assert "100" in result.stdout and "stratified" in result.stdout
    rows = _rows(run / "probe.csv")
    assert list(rows[0]) == COLUMNS
    test_rows = [r for r in rows if r["split"] == "test"]
    assert [int(r["repeat"]) for r in test_rows] == [0, 1, 2]
    assert len({r["seed"] for r in test_rows}) == 3
    with h5py.File(run / "metrics.h5", "r") as f:
        assert "test/best-abc/mean" in f
        accuracy = f["probe/100/test_accuracy"][()]
        assert f["probe/100/weight"].shape == (3, 3, 2)  # repeats x classes x latent
    np.testing.assert_allclose(accuracy, [float(r["value"]) for r in test_rows])


def test_a_second_call_keeps_the_other_budgets(duvae, run):
    assert duvae("classify", run, "--labels", "20", "-q").code == 0
    assert duvae("classify", run, "--labels", "100", "-q").code == 0
    assert {r["labels"] for r in _rows(run / "probe.csv")} == {"20", "100"}
    with h5py.File(run / "metrics.h5", "r") as f:
        assert set(f["probe"]) == {"20", "100"}


def test_repeats_on_a_fixed_official_subset_rerun_the_probe(run):
    result = classify_run(run, ClassifyOptions(budgets=(20,), repeats=3, device="cpu"))
    summary = result.summary()[0]
    assert summary["subset"] == "official" and summary["repeats"] == 3
    assert summary["accuracy_mean"] == pytest.approx(np.mean(summary["accuracies"]))
    assert len({r.seed for r in result.records}) == 3


def test_unlabelled_dataset_fails_in_one_line(duvae, run, tmp_path):
    path = write_toy_dataset(tmp_path, "toy-unlabelled", labelled=False)  # same vocabulary, no labels
    manifest = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps({**manifest, "data_path": str(path), "data_sha256": sha256_file(path)}))
    result = duvae("classify", run, "--labels", "10")
    assert result.code == 1
    assert result.stderr.count("\n") == 1 and "no labels" in result.stderr


def test_image_run_without_its_dataset_fails_in_one_line(duvae, run):
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "dataset": "omniglot"}))
    manifest = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps({**manifest, "data_path": str(run / "gone.h5")}))
    for args in (["classify", run], ["visualize", run, "--kind", "latent"]):
        result = duvae(*args)
        assert result.code == 1 and "gone.h5" in result.stderr and result.stderr.count("\n") == 1
    assert duvae("classify", run, "--labels", "10").code == 2  # image runs take --per-class


def test_bad_requests_name_the_option(duvae, run):
    assert "--labels 5000" in duvae("classify", run, "--labels", "5000").stderr
    assert "--repeats 0" in duvae("classify", run, "--repeats", "0").stderr
