"""Runs that are safe to open (issue #30; docs/reliability.md threat model): no pickle in a run,
checkpoints that round-trip bit for bit, and hostile runs refused in one line before anything runs."""

from __future__ import annotations

import json
import math
import os
import shutil
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from duvae_cli.errors import DuvaeError
from duvae_cli.runs.checkpoint import header_of, load_checkpoint, save_checkpoint
from duvae_cli.runs.migrate import first_difference
from duvae_cli.runs.trust import MAX_TOKEN_BYTES, pickle_kind
from toyruns import make_toy_data, toy_sets

PACKAGE = Path(__file__).resolve().parents[1] / "duvae_cli"


def cli(*args) -> int:
    from duvae_cli.cli import main

    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """data/toy and runs/a: 2 epochs of du, evaluated on test with K = 4."""
    root = tmp_path_factory.mktemp("safe")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        make_toy_data(root / "data")
        assert cli("train", "--dataset", "toy", "--model", "du", "--epochs", 2, *toy_sets(root / "data"),
                   "--run-dir", "runs/a", "--quiet") == 0
        assert cli("evaluate", "runs/a", "--iw-samples", 4, "--quiet") == 0
    finally:
        os.chdir(cwd)
    return root


@pytest.fixture
def run(workspace, tmp_path, monkeypatch) -> Path:
    """A copy of runs/a to damage; the working directory is the workspace."""
    monkeypatch.chdir(workspace)
    copy = workspace / "runs" / tmp_path.name
    shutil.copytree(workspace / "runs" / "a", copy)
    return copy


class Creates:
    """Unpickling this creates the file `path` (builtins.open): the payload of a hostile checkpoint."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return open, (str(self.path), "w")


def hostile_pickle(path: Path, marker: Path) -> None:
    torch.save({"model": OrderedDict(w=torch.zeros(2)), "x": Creates(marker)}, path)


def test_the_hostile_pickle_of_these_tests_does_create_its_file_when_unpickled(tmp_path):
    """The control: the payload below is live, so `not marker.exists()` in the tests means something."""
    marker = tmp_path / "created"
    hostile_pickle(tmp_path / "evil.pt", marker)
    torch.load(tmp_path / "evil.pt", weights_only=False)
    assert marker.exists()


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


# ------------------------------------------------------------------------------- the format ---

def test_a_new_run_is_safetensors_and_json_and_holds_no_pickle(workspace):
    run = workspace / "runs" / "a"
    names = sorted(p.name for p in (run / "checkpoints").iterdir() if not p.name.startswith("."))
    assert names == ["best.safetensors", "last.safetensors"]
    for path in (p for p in run.rglob("*") if p.is_file()):
        data = path.read_bytes()
        assert pickle_kind(data) is None and data[:4] != b"PK\x03\x04", path
        if path.suffix == ".safetensors":  # 8-byte header size, then a JSON header with duvae's format
            assert header_of(data, path)["__metadata__"]["duvae_format"] == "duvae-checkpoint/1"


def test_a_checkpoint_gives_back_every_value_bit_for_bit(tmp_path):
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    payload = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
               "state": {"best_loss": math.inf, "ref_loss": -math.inf, "history": [{"pre_bn_var_min": math.nan}],
                         "sums": {"loss": torch.tensor(1.5, dtype=torch.float64), "n": 3}},
               "rng": {"torch": torch.get_rng_state()}, "tuple": (1, "a", None), "keys": {0: "x", 7: [1.0]},
               "dollar": {"$tensor": "not a tag"}, "bf16": torch.tensor([0.1, -0.0], dtype=torch.bfloat16)}
    save_checkpoint(tmp_path / "c.safetensors", payload)
    back = load_checkpoint(tmp_path / "c.safetensors")
    assert first_difference(payload, back) is None
    assert math.isnan(back["state"]["history"][0]["pre_bn_var_min"]) and back["state"]["best_loss"] == math.inf
    assert back["rng"]["torch"].dtype == torch.uint8 and isinstance(back["tuple"], tuple)
    assert torch.equal(back["bf16"].view(torch.int16), payload["bf16"].view(torch.int16))  # -0.0 kept
    fresh = torch.optim.Adam(torch.nn.Linear(3, 2).parameters(), lr=0.1)
    fresh.load_state_dict(back["optimizer"])  # Adam's step counters and moments, as stored
    assert first_difference(fresh.state_dict(), optimizer.state_dict()) is None


def test_weights_only_false_is_nowhere_in_the_library():
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "weights_only=False" not in text, path
        assert "pickle.load" not in text and ("torch.load(" not in text or path.name == "migrate.py"), path


# ------------------------------------------------------------------------------ hostile runs ---

def test_a_checkpoint_replaced_by_a_pickle_is_refused_and_never_run(run, workspace, tmp_path, capsys):
    marker = tmp_path / "created-by-the-pickle"
    for name in ("best", "last"):
        hostile_pickle(run / "checkpoints" / f"{name}.safetensors", marker)
    (workspace / "in.txt").write_text("w1 w2 w3\n")
    for args in (["evaluate", run, "--iw-samples", 2], ["encode", run, workspace / "in.txt"],
                 ["train", "--resume", run, "--quiet"]):
        capsys.readouterr()
        assert cli(*args) == 1, args
        line = one_line(capsys)
        assert "best.safetensors" in line or "last.safetensors" in line, line
        assert "zip archive (torch.save), not a safetensors file" in line and "duvae migrate" in line, line
    import duvae_cli

    with pytest.raises(DuvaeError, match="not a safetensors file"):
        duvae_cli.load(run, device="cpu")
    assert not marker.exists()
    assert not (run / "metrics.partial").exists()


def test_an_old_pickled_run_names_duvae_migrate_and_migrate_refuses_a_hostile_one(run, workspace, tmp_path, capsys):
    marker = tmp_path / "created-by-the-pickle"
    for name in ("best", "last"):
        (run / "checkpoints" / f"{name}.safetensors").unlink()
        hostile_pickle(run / "checkpoints" / f"{name}.pt", marker)
    (workspace / "in.txt").write_text("w1 w2 w3\n")
    for args in (["evaluate", run], ["encode", run, workspace / "in.txt"], ["train", "--resume", run]):
        capsys.readouterr()
        assert cli(*args) == 1, args
        line = one_line(capsys)
        assert "made by an earlier duvae" in line and line.endswith(f"duvae migrate {run}"), line
    capsys.readouterr()
    assert cli("migrate", run) == 1
    line = one_line(capsys)
    assert "best.pt: names io.open, which duvae never stored" in line, line
    assert not marker.exists() and (run / "checkpoints" / "best.pt").exists()  # refused, left as it was


def test_a_symlinked_checkpoint_pointing_outside_the_run_is_refused(run, tmp_path, capsys):
    outside = tmp_path / "elsewhere.safetensors"
    shutil.copy(run / "checkpoints" / "best.safetensors", outside)  # a good file: only the link is at fault
    (run / "checkpoints" / "best.safetensors").unlink()
    (run / "checkpoints" / "best.safetensors").symlink_to(outside)
    capsys.readouterr()
    assert cli("evaluate", run, "--iw-samples", 2) == 1
    line = one_line(capsys)
    assert "checkpoints/best.safetensors: a symlink to" in line and "outside the run" in line, line
    assert not (run / "metrics.partial").exists()


@pytest.mark.parametrize("field, value, words", [
    ("p", 1.5, "config.json: --p 1.5: must be in (0, 1]; refusing to open the run"),
    ("latent_dim", 0, "config.json: --latent-dim 0: must be in [1, 4096]"),
    ("data_root", "../../../somewhere", "config.json: data_root '../../../somewhere' leads outside the workspace"),
])
def test_config_values_out_of_range_or_paths_out_of_the_workspace_are_refused(run, capsys, field, value, words):
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, field: value}))
    for args in (["evaluate", run, "--iw-samples", 2], ["train", "--resume", run, "--quiet"]):
        capsys.readouterr()
        assert cli(*args) == 1, args
        line = one_line(capsys)
        assert words in line, line


def test_an_oversized_vocabulary_line_is_refused(run, capsys):
    bound = json.loads((run / "binding.json").read_text())
    bound["vocab"][5] = "x" * (MAX_TOKEN_BYTES + 1)
    (run / "binding.json").write_text(json.dumps(bound))
    capsys.readouterr()
    assert cli("evaluate", run, "--iw-samples", 2) == 1
    line = one_line(capsys)
    assert f"binding.json: vocabulary entry 5 is {MAX_TOKEN_BYTES + 1:,} bytes long" in line, line


def test_a_checkpoint_is_a_function_of_its_content():
    """safetensors writes the header's metadata in a random order; the bytes (and so the sha256 that
    metrics.csv rows and migrate's mapping name) must not depend on it."""
    import hashlib

    from duvae_cli.runs.checkpoint import checkpoint_bytes

    torch.manual_seed(0)
    payload = {"model": {"w": torch.randn(3, 2)}, "state": {"best_loss": float("inf"), "epoch": 1},
               "rng": {"torch": torch.get_rng_state()}, "config": {"model": "du"}}
    assert len({hashlib.sha256(checkpoint_bytes(payload)).digest() for _ in range(20)}) == 1
