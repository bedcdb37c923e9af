"""Runs made before the options were declared per method stay usable: tests/fixtures/config_v0.json
is a config.json written by the code before that change (duvae 5a77d99, `toy` dataset, du)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from duvae_cli.data.store import SPECIALS, Built, SplitData, write_dataset
from duvae_cli.config.resolve import TrainConfig
from duvae_cli.runs.checkpoint import load_checkpoint, save_checkpoint
from duvae_cli.runs.run import read_config

OLD_CONFIG = Path(__file__).parent / "fixtures" / "config_v0.json"


def _split(n: int, rng: np.random.Generator) -> SplitData:
    lengths = rng.integers(2, 7, n)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return SplitData({"tokens": rng.integers(4, 14, offsets[-1]).astype(np.int32), "offsets": offsets})


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Path:
    rng = np.random.default_rng(0)
    built = Built(kind="text", splits={"train": _split(48, rng), "valid": _split(16, rng)},
                  vocab=[*SPECIALS, *(f"w{i}" for i in range(10))], tokenizer="word")
    write_dataset(tmp_path / "data" / "toy" / "dataset.h5", "toy", built)
    monkeypatch.chdir(tmp_path)  # the old config's data_root is the relative "data"
    return tmp_path


def test_old_config_reads_and_new_fields_take_their_defaults(tmp_path):
    old = json.loads(OLD_CONFIG.read_text())
    (tmp_path / "config.json").write_text(OLD_CONFIG.read_text())
    config = read_config(tmp_path)
    defaults = TrainConfig().to_dict()
    assert {k: v for k, v in config.to_dict().items() if k in old} == old
    assert all(config.to_dict()[k] == defaults[k] for k in set(defaults) - set(old))


def test_same_settings_write_the_old_config_and_old_runs_resume_and_report(duvae, workspace):
    result = duvae("train", "--dataset", "toy", "--model", "du", "--set", "embed_dim=8", "--set", "hidden_dim=8",
                   "--latent-dim", "2", "--epochs", "1", "--batch-size", "16", "--device", "cpu",
                   "--warm-up", "1", "--run-dir", "runs/old", "--quiet")
    assert result.code == 0, result.stderr
    run = workspace / "runs" / "old"
    old, new = json.loads(OLD_CONFIG.read_text()), json.loads((run / "config.json").read_text())
    # Same settings, same values; fields added since at defaults. Two defaults changed on purpose:
    # precision became `auto`, which a run stores resolved (fp32, or bf16 on hardware with native bf16
    # units), and the IAF width became the paper's 60 (issue #15).
    changed = {"precision", "flow_width"}
    assert {k: new[k] for k in old if k not in changed} == {k: v for k, v in old.items() if k not in changed}
    assert new["precision"] in ("fp32", "bf16") and new["flow_width"] == 60
    (run / "config.json").write_text(OLD_CONFIG.read_text())  # the run as the old code left it:
    for path in (run / "checkpoints").glob("*.safetensors"):  # its checkpoints stored the same config
        save_checkpoint(path, {**load_checkpoint(path), "config": old})

    resumed = duvae("train", "--resume", run, "--epochs", "2", "--quiet", "--json")
    assert resumed.code == 0, resumed.stderr
    assert json.loads(resumed.stdout)["epochs_done"] == 2
    assert duvae("evaluate", run, "--split", "valid", "--iw-samples", "2", "--quiet").code == 0
    table = duvae("report", run, "--split", "valid", "--quiet")
    assert table.code == 0 and "| toy" in table.stdout and "du" in table.stdout


def test_a_config_json_with_a_wrong_type_fails_in_one_line(duvae, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({**json.loads(OLD_CONFIG.read_text()), "epochs": "ten"}))
    result = duvae("train", "--resume", tmp_path, "--quiet")
    assert result.code == 1 and "config.json: epochs: expected an integer, got 'ten'" in result.stderr
