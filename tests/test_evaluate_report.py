"""`evaluate_trained`: metrics.h5 groups, metrics.csv rows that replace rather than duplicate, resume."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import torch

from duvae_cli.errors import UsageError
from duvae_cli.data.batching import TextBatches
from duvae_cli.metrics import EvalOptions, evaluate_trained, score_examples
from duvae_cli.metrics.store import PartialResults
from duvae_cli.config.build import build_text_model
from duvae_cli.config.resolve import TrainConfig
from duvae_cli.runs.load import Trained



def toy_split(n: int, rng: np.random.Generator) -> SimpleNamespace:
    lengths = rng.integers(1, 8, n)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return SimpleNamespace(tokens=rng.integers(4, 20, offsets[-1]).astype(np.int32), offsets=offsets)


def toy_trained(run_dir: Path, model: str = "du") -> Trained:
    """What `load_trained` returns, built by hand: no training, no dataset file."""
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    config = TrainConfig(dataset="toy", model=model, embed_dim=8, hidden_dim=8, latent_dim=3)
    dataset = SimpleNamespace(name="toy", kind="text", sha256="d" * 64, vocab=[f"w{i}" for i in range(20)],
                              splits={"valid": toy_split(23, rng), "test": toy_split(31, rng)})
    run_dir.mkdir(parents=True, exist_ok=True)
    return Trained(run_dir=run_dir, config=config, model=build_text_model(config, 20).eval(),
                   dataset=dataset, checkpoint=run_dir / "checkpoints" / "best.safetensors",
                   checkpoint_sha256="c" * 64)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_outputs_hold_every_number_with_its_estimator(tmp_path):
    trained = toy_trained(tmp_path / "run")
    report = evaluate_trained(trained, "test", EvalOptions(iw_samples=8, seed=4))
    with h5py.File(tmp_path / "run" / "metrics.h5", "r") as f:
        group = f[f"test/best-{'c' * 12}"]
        assert group["mean"].shape == (31, 3) and group["iw_nll"].shape == (31,)
        assert group.attrs["iw_samples"] == 8 and group.attrs["seed"] == 4
        assert group.attrs["checkpoint_sha256"] == "c" * 64 and group.attrs["split"] == "test"
        # the summary is a function of the stored per-example values
        assert report.metrics["iw_nll"] == pytest.approx(group["iw_nll"][()].mean(), rel=1e-12)
        ppl = math.exp(group["iw_nll"][()].sum() / group["n_tokens"][()].sum())
        assert report.metrics["iw_ppl"] == pytest.approx(ppl, rel=1e-12)
        assert report.metrics["kl"] == pytest.approx(group["per_dim/kl"][()].sum(), rel=1e-9)
        assert report.metrics["au"] == int((group["per_dim/au_variance"][()] >= 0.01).sum())
    rows = read_csv(tmp_path / "run" / "metrics.csv")
    assert {r["metric"] for r in rows} >= {"iw_nll", "iw_ppl", "elbo_nll", "ppl", "rec", "kl", "mi", "au",
                                            "mpd", "ce"}
    assert all(r["n_samples"] == "8" and r["seed"] == "4" and r["estimator"] for r in rows)
    assert not (tmp_path / "run" / "metrics.partial").exists()  # cleaned up after success


def test_reevaluation_replaces_rows_and_groups_and_keeps_the_others(tmp_path):
    trained = toy_trained(tmp_path / "run")
    evaluate_trained(trained, "test", EvalOptions(iw_samples=4))
    evaluate_trained(trained, "valid", EvalOptions(iw_samples=4))
    first = read_csv(tmp_path / "run" / "metrics.csv")
    evaluate_trained(trained, "test", EvalOptions(iw_samples=4))  # the same evaluation again
    assert len(read_csv(tmp_path / "run" / "metrics.csv")) == len(first)
    evaluate_trained(trained, "test", EvalOptions(iw_samples=4, seed=1))  # another seed: new rows
    rows = read_csv(tmp_path / "run" / "metrics.csv")
    assert len(rows) == len(first) + len(first) // 2
    evaluate_trained(trained, "test", EvalOptions(iw_samples=4, mi_estimator="batch", batch_size=8))
    mi = [r for r in read_csv(tmp_path / "run" / "metrics.csv") if r["metric"] == "mi" and r["seed"] != "1"]
    assert sorted(r["estimator"] for r in mi if r["split"] == "test") == ["per-batch-8", "whole-set"]
    with h5py.File(tmp_path / "run" / "metrics.h5", "r") as f:
        assert set(f) == {"test", "valid"} and len(f["test"]) == 1
        assert f[f"test/best-{'c' * 12}"].attrs["mi_estimator"] == "batch"


def test_unknown_split_names_the_splits_the_dataset_has(tmp_path):
    with pytest.raises(UsageError, match=r"--split 'train'.*it has: valid, test"):
        evaluate_trained(toy_trained(tmp_path / "run"), "train", EvalOptions(iw_samples=2))


class StopAfter:
    """A reporter whose progress bar raises after `limit` advances: an interrupted evaluation."""

    def __init__(self, limit: int):
        self.limit, self.advances = limit, []

    def task(self, description, total):
        import contextlib

        owner = self

        class Task:
            def advance(self, n=1, **fields):
                owner.advances.append(n)
                if len(owner.advances) > owner.limit:
                    raise KeyboardInterrupt

        return contextlib.nullcontext(Task())

    def log(self, message):
        pass


@pytest.mark.parametrize("flush_seconds, files", [(0.0, 3), (3600.0, 1)])
def test_an_interrupted_evaluation_resumes_where_it_stopped(tmp_path, flush_seconds, files):
    trained = toy_trained(tmp_path / "run")
    options = EvalOptions(iw_samples=6, batch_size=4, flush_seconds=flush_seconds)
    with pytest.raises(KeyboardInterrupt):
        evaluate_trained(trained, "test", options, reporter=StopAfter(limit=3))
    # three batches of 4 were finished: flushed as they completed, or all at the interruption
    assert len(list((tmp_path / "run" / "metrics.partial").glob("*/part-*.npz"))) == files
    resumed = StopAfter(limit=10**6)
    report = evaluate_trained(trained, "test", options, reporter=resumed)
    assert resumed.advances[0] == 12  # the 12 finished examples are counted, not recomputed
    assert sum(resumed.advances) == 31
    fresh = evaluate_trained(toy_trained(tmp_path / "other"), "test", options)
    assert report.metrics == pytest.approx(fresh.metrics, rel=1e-9)


def test_partial_results_are_only_resumed_with_the_same_key(tmp_path):
    trained = toy_trained(tmp_path / "run")
    examples = TextBatches(trained.dataset.splits["test"])
    key = {"split": "test", "seed": 1, "iw_samples": 4}
    options = EvalOptions(iw_samples=4, seed=1, flush_seconds=0.0)
    score_examples(trained.model, examples, options, partial=PartialResults(tmp_path / "p", key))
    assert len(PartialResults(tmp_path / "p", key).load()[0]) >= 1
    assert PartialResults(tmp_path / "p", {**key, "seed": 2}).load() == ([], 0)


def test_a_subset_evaluation_gives_each_example_its_whole_split_numbers(tmp_path):
    """`--examples N`: a seeded subset, and the noise of an example is keyed by its split index, so
    the subset's per-example values are exactly those of a whole-split evaluation."""
    trained = toy_trained(tmp_path / "run")
    whole = evaluate_trained(trained, "test", EvalOptions(iw_samples=6, seed=9))
    with h5py.File(tmp_path / "run" / "metrics.h5", "r") as f:
        all_iw = f[whole.files["group"]]["iw_nll"][()]
        all_mean = f[whole.files["group"]]["mean"][()]
    part = evaluate_trained(trained, "test", EvalOptions(iw_samples=6, seed=9, examples=10))
    with h5py.File(tmp_path / "run" / "metrics.h5", "r") as f:
        group = f[part.files["group"]]
        index = group["example_index"][()]
        assert len(index) == 10 and len(set(index)) == 10 and (np.diff(index) > 0).all()
        np.testing.assert_allclose(group["iw_nll"][()], all_iw[index], rtol=1e-6, atol=1e-9)
        np.testing.assert_array_equal(group["mean"][()], all_mean[index])
        assert group.attrs["examples"] == 10 and group.attrs["n_evaluated"] == 10
    assert part.metrics["n_examples"] == 10
    again = evaluate_trained(trained, "test", EvalOptions(iw_samples=6, seed=9, examples=10))
    assert again.metrics == part.metrics  # the same seed draws the same subset
    with pytest.raises(UsageError, match="--examples"):
        EvalOptions(examples=0)
