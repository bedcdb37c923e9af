"""On the synthetic corpus (§4.3), a briefly trained DU-VAE's posterior means let a linear probe
recover the 5 mixture components far above chance. Slow: generates data and trains for minutes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from duvae_cli.data.store import SPECIALS, Built, SplitData, load_dataset, write_dataset
from duvae_cli.prepare.synthetic import MEANS, SyntheticConfig, generate
from duvae_cli.probe import ClassifyOptions, classify_run
from duvae_cli.config.resolve import resolve_config
from duvae_cli.train.loop import train
from duvae_cli.runs.run import manifest, new_run_dir, write_json

pytestmark = pytest.mark.slow


def _small_synthetic(path, sizes=(4000, 1000, 1000)):
    config = SyntheticConfig(sizes=sizes)
    tokens, labels, z = generate(config)
    built = Built(kind="text", splits={}, vocab=[*SPECIALS, *map(str, range(config.vocab))], tokenizer="word",
                  num_labels=len(MEANS))
    bounds = np.cumsum([0, *sizes])
    for name, start, end in zip(("train", "valid", "test"), bounds[:-1], bounds[1:]):
        built.splits[name] = SplitData({
            "tokens": (tokens[start:end] + len(SPECIALS)).astype(np.int32).reshape(-1),
            "offsets": np.arange(end - start + 1, dtype=np.int64) * config.length,
            "labels": labels[start:end].astype(np.int64), "z": z[start:end].astype(np.float32)})
    write_dataset(path, "synthetic", built)
    return load_dataset(path)


def test_du_vae_probe_beats_chance_by_a_wide_margin(tmp_path):
    path = tmp_path / "data" / "synthetic" / "dataset.h5"
    dataset = _small_synthetic(path)
    config = resolve_config("synthetic", "du", dict(epochs=4, warm_up=1.0, batch_size=32, device="cpu"),
                            sets=[f"data_root={tmp_path / 'data'}"])
    run = new_run_dir(config, tmp_path / "runs")
    write_json(run / "config.json", config.to_dict())
    write_json(run / "manifest.json", manifest(config, path, dataset.sha256, "cpu"))
    train(config, dataset, run)
    result = classify_run(run, ClassifyOptions(budgets=(100, 1000), repeats=2, device="cpu"))
    summary = {s["labels"]: s for s in result.summary()}
    assert result.majority_accuracy < 0.25  # 5 balanced components
    assert summary[1000]["accuracy_mean"] > 0.6, json.dumps(result.summary())
    assert summary[100]["accuracy_mean"] > 0.45, json.dumps(result.summary())
