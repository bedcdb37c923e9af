"""`duvae evaluate` end to end on a run directory made by hand (untrained model, tiny dataset.h5)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from duvae_cli.data.store import SPECIALS, Built, SplitData, load_dataset, write_dataset
from duvae_cli.config.build import build_text_model
from duvae_cli.config.resolve import resolve_config
from duvae_cli.runs.checkpoint import save_checkpoint
from duvae_cli.runs.run import manifest, new_run_dir, write_json



def _split(n: int, rng: np.random.Generator) -> SplitData:
    lengths = rng.integers(1, 9, n)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return SplitData({"tokens": rng.integers(4, 20, offsets[-1]).astype(np.int32), "offsets": offsets})


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """data/toy/dataset.h5 (train, test) and runs/<run>/ with config, manifest and both checkpoints."""
    root = tmp_path_factory.mktemp("evaluate")
    rng = np.random.default_rng(0)
    built = Built(kind="text", splits={"train": _split(40, rng), "test": _split(25, rng)},
                  vocab=[*SPECIALS, *(f"w{i}" for i in range(16))], tokenizer="word")
    data_path = root / "data" / "toy" / "dataset.h5"
    write_dataset(data_path, "toy", built)
    dataset = load_dataset(data_path)
    config = resolve_config("toy", "du", dict(embed_dim=8, hidden_dim=8, latent_dim=2, device="cpu"))
    run = new_run_dir(config, root / "runs")
    write_json(run / "config.json", config.to_dict())
    write_json(run / "manifest.json", manifest(config, data_path, dataset.sha256, "cpu"))
    torch.manual_seed(0)
    model = build_text_model(config, len(dataset.vocab))
    save_checkpoint(run / "checkpoints" / "best.safetensors", {"model": model.state_dict()})
    with torch.no_grad():
        model.decoder.project.weight.mul_(3.0)  # a different "last" checkpoint
    save_checkpoint(run / "checkpoints" / "last.safetensors", {"model": model.state_dict()})
    return run


def test_json_output_and_files(duvae, run_dir):
    result = duvae("evaluate", run_dir, "--iw-samples", 12, "--json", "--quiet")
    assert result.code == 0, result.stderr
    assert result.stderr == ""
    payload = json.loads(result.stdout)
    metrics = payload["metrics"]
    assert payload["split"] == "test" and payload["iw_samples"] == 12 and payload["checkpoint"] == "best"
    assert metrics["iw_nll"]["estimator"] == "iw" and metrics["mi"]["estimator"] == "whole-set"
    assert metrics["iw_nll"]["value"] <= metrics["elbo_nll"]["value"] + 0.05
    assert metrics["n_examples"]["value"] == 25
    with h5py.File(run_dir / "metrics.h5", "r") as f:
        assert f"test/best-{payload['checkpoint_sha256'][:12]}" in f


def test_table_and_both_checkpoints(duvae, run_dir):
    best = duvae("evaluate", run_dir, "--iw-samples", 4, "--memory-budget", "200KB")
    last = duvae("evaluate", run_dir, "--iw-samples", 4, "--checkpoint", "last", "--quiet")
    assert best.code == 0 and last.code == 0, best.stderr + last.stderr
    assert "iw_nll" in best.stdout and "var>=0.01" in best.stdout
    assert "IW-NLL" in best.stderr and "wrote" in best.stderr  # progress and log on stderr
    with open(run_dir / "metrics.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["n_samples"] == "4"]
    assert {r["checkpoint"] for r in rows} == {"best", "last"}
    assert len({r["checkpoint_sha256"] for r in rows}) == 2


@pytest.mark.parametrize("args, message", [
    (["--split", "valid"], "--split 'valid': dataset toy has no such split; it has: train, test"),
    (["--memory-budget", "lots"], "--memory-budget 'lots'"),
    (["--iw-samples", "0"], "--iw-samples 0"),
    (["--mi-estimator", "kde"], "--mi-estimator 'kde': choose whole or batch"),
    (["--checkpoint", "final"], "--checkpoint 'final': choose best or last"),
])
def test_usage_errors_are_one_line_naming_the_option(duvae, run_dir, args, message):
    result = duvae("evaluate", run_dir, *args)
    assert result.code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args", [("evaluate", "{nope}"), ("classify", "{nope}"), ("encode", "{nope}", "x.txt"),
                                  ("generate", "{nope}", "--sample", "2"), ("visualize", "{nope}"),
                                  ("report", "{nope}"), ("export", "{nope}", "{tmp}/out"), ("migrate", "{nope}"),
                                  ("train", "--resume", "{nope}")])
def test_a_missing_run_directory_is_a_usage_error_in_one_line(duvae, tmp_path, args):
    """`duvae evaluate runs/nope` (and every command that takes a run) exits 2, as usage errors do."""
    result = duvae(*(a.format(nope=tmp_path / "nope", tmp=tmp_path) for a in args))
    assert result.code == 2, result.stderr
    assert "nope: no such run directory" in result.stderr and len(result.stderr.strip().splitlines()) == 1
