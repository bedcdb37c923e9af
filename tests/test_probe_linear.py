"""The linear probe and the labelled subsets: properties that do not need a trained model."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from duvae_cli.errors import UsageError
from duvae_cli.probe.linear import ProbeSettings, fit_probe
from duvae_cli.probe.subsets import labelled_sets, official_budgets, stratified_set


def _blobs(n: int, rng: np.random.Generator, centres: np.ndarray, spread: float):
    labels = rng.integers(0, len(centres), n)
    return centres[labels] + spread * rng.standard_normal((n, centres.shape[1])), labels


CENTRES = np.array([[0.0, 0.0], [2.0, 2.0], [-2.0, 2.0], [2.0, -2.0], [-2.0, -2.0]])  # the synthetic mixture


def test_probe_finds_linearly_separable_classes():
    rng = np.random.default_rng(0)
    (tx, ty), (vx, vy), (sx, sy) = (_blobs(n, rng, CENTRES, 0.3) for n in (100, 500, 2000))
    fit = fit_probe(tx, ty, vx, vy, n_classes=5, seed=1)
    assert fit.accuracy(sx, sy) > 0.95  # chance is 0.2
    assert fit.valid_loss < 0.5


def test_probe_on_uninformative_features_stays_near_chance():
    rng = np.random.default_rng(1)
    features = lambda n: rng.standard_normal((n, 2))  # noqa: E731
    labels = lambda n: rng.integers(0, 5, n)  # noqa: E731
    fit = fit_probe(features(100), labels(100), features(500), labels(500), n_classes=5, seed=1)
    assert fit.accuracy(features(4000), labels(4000)) < 0.3


def test_probe_is_deterministic_given_the_seed_and_depends_on_it():
    rng = np.random.default_rng(2)
    (tx, ty), (vx, vy) = (_blobs(n, rng, CENTRES, 1.2) for n in (40, 200))
    a, b = (fit_probe(tx, ty, vx, vy, 5, seed=7) for _ in range(2))
    c = fit_probe(tx, ty, vx, vy, 5, seed=8)
    np.testing.assert_array_equal(a.weight, b.weight)
    assert not np.array_equal(a.weight, c.weight)


def test_early_stopping_returns_the_best_validation_loss_seen():
    rng = np.random.default_rng(3)
    (tx, ty), (vx, vy) = (_blobs(n, rng, CENTRES, 1.5) for n in (30, 300))
    short = fit_probe(tx, ty, vx, vy, 5, seed=0, settings=ProbeSettings(max_epochs=1))
    full = fit_probe(tx, ty, vx, vy, 5, seed=0)
    assert full.valid_loss <= short.valid_loss
    logits = vx @ full.weight.T + full.bias
    log_softmax = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    assert -log_softmax[np.arange(len(vy)), vy].mean() == pytest.approx(full.valid_loss, rel=1e-4)


@pytest.mark.parametrize("budget", [10, 37, 100])
def test_stratified_draw_keeps_the_class_balance(budget):
    labels = np.repeat([0, 1, 2], [500, 300, 200])
    drawn = stratified_set(labels, budget, np.random.default_rng(0))
    counts = np.bincount(drawn.labels, minlength=3)
    assert counts.sum() == budget == len(np.unique(drawn.indices))
    assert np.all(np.abs(counts - budget * np.array([0.5, 0.3, 0.2])) < 1)
    np.testing.assert_array_equal(labels[drawn.indices], drawn.labels)


def test_repeats_redraw_subsets_but_reuse_an_official_one():
    labels = np.arange(1000) % 4
    official = SimpleNamespace(labels=np.zeros(50, dtype=np.int64), offsets=np.arange(51))
    dataset = SimpleNamespace(splits={"train": SimpleNamespace(labels=labels)},
                              subsets={"50": official, "unlabelled": SimpleNamespace(labels=None)})
    assert official_budgets(dataset) == [50]
    fixed = labelled_sets(dataset, 50, repeats=3, seed=0)
    assert [s.kind for s in fixed] == ["official"] * 3 and fixed[0].source == "subsets/50"
    drawn = labelled_sets(dataset, 60, repeats=3, seed=0)
    assert {s.kind for s in drawn} == {"stratified"}
    assert len({tuple(s.indices) for s in drawn}) == 3
    again = labelled_sets(dataset, 60, repeats=3, seed=0)
    assert all(np.array_equal(a.indices, b.indices) for a, b in zip(drawn, again))


def test_a_budget_larger_than_the_train_split_is_a_usage_error():
    with pytest.raises(UsageError, match="--labels 20"):
        stratified_set(np.zeros(10, dtype=np.int64), 20, np.random.default_rng(0))
