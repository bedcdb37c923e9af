"""`duvae export` (a Hub-style folder with a model card, verified on load) and `duvae migrate` (an old
pickled run converted with PyTorch's restricted unpickler); issue #30, docs/use.md and docs/runs.md."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from duvae_cli.errors import DuvaeError
from duvae_cli.io import sha256_file
from duvae_cli.runs.checkpoint import load_checkpoint
from test_images_toyrun import image_run  # noqa: F401  (a hand-built image run)
from test_safe_runs import cli, one_line, workspace  # noqa: F401  (the module's trained run)

FILES = ["README.md", "binding.json", "config.json", "history.csv", "manifest.json", "metrics.csv",
         "model.safetensors", "vocab.txt"]


def rows(path: Path) -> dict[str, dict]:
    return {r["metric"]: r for r in csv.DictReader(path.open(encoding="utf-8"))}


def front_matter(card: Path) -> dict:
    yaml = pytest.importorskip("yaml")
    text = card.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def digest(folder: Path) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def export(workspace):  # noqa: F811
    out = workspace / "exports" / "a"
    cwd = Path.cwd()
    import os

    os.chdir(workspace)
    try:
        assert cli("export", "runs/a", out, "--quiet") == 0
    finally:
        os.chdir(cwd)
    return out


def test_export_writes_weights_config_and_a_card_reporting_the_runs_iw_nll(workspace, export):  # noqa: F811
    assert sorted(p.name for p in export.iterdir()) == FILES
    run = workspace / "runs" / "a"
    iw = rows(run / "metrics.csv")["iw_nll"]
    meta = front_matter(export / "README.md")
    assert meta["library_name"] == "duvae" and meta["datasets"] == ["toy"] and "du" in meta["tags"]
    [result] = meta["model-index"][0]["results"]
    scored = {m["type"]: m for m in result["metrics"]}
    assert scored["iw_nll"]["value"] == float(iw["value"]) and scored["iw_nll"]["args"]["n_samples"] == 4
    assert scored["iw_nll"]["config"] == "iw" and result["dataset"]["split"] == "test"
    card = (export / "README.md").read_text()
    assert f"| test | iw_nll | {iw['value']} | iw | 4 |" in card and "- seed: 783435" in card
    for name in FILES[1:]:  # every other file, with its sha256, in a block `sha256sum -c` reads
        assert f"{sha256_file(export / name)}  {name}\n" in card
    config = json.loads((export / "config.json").read_text())
    assert config["duvae_export"]["checkpoint_sha256"] == sha256_file(run / "checkpoints" / "best.safetensors")
    assert config["data_root"] == "data" and "data_path" not in json.loads((export / "manifest.json").read_text())
    weights = load_checkpoint(run / "checkpoints" / "best.safetensors")["model"]
    from safetensors.torch import load_file

    exported = load_file(export / "model.safetensors")  # plain state-dict names, readable by any tool
    assert exported.keys() == weights.keys() and all(torch.equal(exported[k], weights[k]) for k in weights)


def test_evaluate_load_and_report_take_an_export_and_leave_it_unmodified(workspace, export, monkeypatch, capsys):  # noqa: F811
    monkeypatch.chdir(workspace)
    before = digest(export)
    capsys.readouterr()
    assert cli("evaluate", export, "--iw-samples", 4) == 2  # results never go into the export
    assert "an export, which stays as its author made it; write the results elsewhere with --out" in one_line(capsys)
    assert cli("evaluate", export, "--iw-samples", 4, "--out", workspace / "res", "--quiet") == 0
    ours, theirs = rows(workspace / "res" / "metrics.csv"), rows(workspace / "runs" / "a" / "metrics.csv")
    assert ours["iw_nll"]["value"] == theirs["iw_nll"]["value"]  # the same weights, the same number
    assert ours["iw_nll"]["checkpoint"] == "best"
    assert ours["iw_nll"]["checkpoint_sha256"] == theirs["iw_nll"]["checkpoint_sha256"]
    import duvae_cli

    text = ["w1 w2 w3", "w4 w5"]
    a, b = duvae_cli.load(export, device="cpu"), duvae_cli.load(workspace / "runs" / "a", device="cpu")
    assert (a.encode(text).mean == b.encode(text).mean).all()
    capsys.readouterr()
    assert cli("report", export, "--format", "json") == 0
    assert '"stale": "no"' in capsys.readouterr().out  # its numbers are of the checkpoint it holds
    assert cli("report", workspace / "runs" / "a", export, "--format", "csv") == 0
    out, err = capsys.readouterr()
    assert "also listed; counted once" in err and out.count("\ntoy,") == 1
    assert digest(export) == before


def test_report_reads_an_export_without_importing_torch(workspace, export):  # noqa: F811
    from test_commands import _modules_after

    table = _modules_after("report", export, "--format", "csv", cwd=workspace)
    assert table["code"] == 0 and not table["torch"], table
    assert "\ntoy," in table["stdout"]


def test_an_export_without_its_data_still_loads_encodes_and_generates(workspace, export, tmp_path, monkeypatch, capsys):  # noqa: F811
    monkeypatch.chdir(tmp_path)  # no data/ here
    import duvae_cli

    model = duvae_cli.load(export, device="cpu")
    assert model.encode(["w1 w2"]).mean.shape == (1, 2) and "read and written through its vocab.txt" in \
        model.trained.data_notes[0]
    assert len(model.sample(2)) == 2
    capsys.readouterr()
    assert cli("evaluate", export, "--out", tmp_path / "res") == 1
    line = one_line(capsys)
    assert "no file holds the same data: data/toy/dataset.h5 (absent)" in line and "--data-root" in line


def test_an_image_run_without_binding_json_exports_and_samples_without_its_data(image_run, tmp_path, monkeypatch):  # noqa: F811
    """The toy image run is built by hand, without binding.json: the export fingerprints its data."""
    out = tmp_path / "image-export"
    assert cli("export", image_run, out, "--checkpoint", "last", "--quiet") == 0
    assert json.loads((out / "binding.json").read_text())["format"]["kind"] == "image"
    assert not (out / "vocab.txt").exists()
    monkeypatch.chdir(tmp_path)
    import duvae_cli

    with pytest.raises(DuvaeError, match="an export of the last checkpoint only; use --checkpoint last"):
        duvae_cli.load(out, device="cpu")
    model = duvae_cli.load(out, checkpoint="last", device="cpu")
    assert model.kind == "image" and model.sample(2).shape == (2, 28, 28)
    assert "images need none" in model.trained.data_notes[0]


@pytest.mark.parametrize("damage", ["weights", "unlisted", "config"])
def test_a_tampered_export_is_refused_in_one_line(export, tmp_path, monkeypatch, capsys, damage):
    monkeypatch.chdir(tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(export, copy)
    if damage == "weights":
        data = bytearray((copy / "model.safetensors").read_bytes())
        data[-1] ^= 1
        (copy / "model.safetensors").write_bytes(bytes(data))
        words = "model.safetensors: sha256 differs from the one listed in"
    elif damage == "unlisted":  # numbers slipped in beside the card's list
        card = (copy / "README.md").read_text()
        (copy / "README.md").write_text("\n".join(l for l in card.splitlines() if not l.endswith("  metrics.csv")))
        words = "metrics.csv: not listed in the sha256 list of"
    else:  # a hostile author rewrites config.json and its sha256: where it is used, its checks still hold
        config = json.loads((copy / "config.json").read_text())
        new = json.dumps({**config, "data_root": "/etc"}).encode()
        card = (copy / "README.md").read_text().replace(sha256_file(copy / "config.json"),
                                                        hashlib.sha256(new).hexdigest())
        (copy / "config.json").write_bytes(new)
        (copy / "README.md").write_text(card)
        words = "config.json: data_root '/etc' is an absolute path; an export holds none"
    readers = [["report", copy], ["visualize", copy, "--kind", "curves", "--out", tmp_path / "c.png"]]
    for args in [["evaluate", copy, "--out", tmp_path / "res"], *(readers if damage != "config" else [])]:
        capsys.readouterr()
        assert cli(*args) == 1, args
        assert words in one_line(capsys), args
    import duvae_cli

    with pytest.raises(DuvaeError, match=words.split(":")[0]):
        duvae_cli.load(copy, device="cpu")
    assert not (tmp_path / "res" / "metrics.csv").exists() and not (tmp_path / "c.png").exists()


def test_export_refuses_an_existing_folder_and_keeps_it(workspace, export, capsys):  # noqa: F811
    before = digest(export)
    capsys.readouterr()
    assert cli("export", workspace / "runs" / "a", export) == 2
    assert "exists; an export is never written over anything" in one_line(capsys)
    assert digest(export) == before


def test_an_old_pickled_run_is_refused_then_migrated_to_the_same_numbers(workspace, monkeypatch, capsys):  # noqa: F811
    """The old format is made here as the earlier code made it: `torch.save` of the same payload, the
    model's state an OrderedDict, metrics.csv rows naming the .pt file's sha256."""
    monkeypatch.chdir(workspace)
    run = workspace / "runs" / "old"
    shutil.copytree(workspace / "runs" / "a", run)
    moved = {}
    for name in ("best", "last"):
        new = run / "checkpoints" / f"{name}.safetensors"
        payload = load_checkpoint(new)
        torch.save({**payload, "model": OrderedDict(payload["model"])}, run / "checkpoints" / f"{name}.pt")
        moved[sha256_file(new)] = sha256_file(run / "checkpoints" / f"{name}.pt")
        new.unlink()
    table = (run / "metrics.csv").read_text()
    for new_sha, old_sha in moved.items():
        table = table.replace(new_sha, old_sha)
    (run / "metrics.csv").write_text(table)
    before = rows(run / "metrics.csv")

    capsys.readouterr()
    assert cli("evaluate", run, "--iw-samples", 4) == 1
    assert one_line(capsys).endswith(f"convert it once with: duvae migrate {run}")
    assert cli("migrate", run, "--quiet") == 0
    assert sorted(p.name for p in (run / "checkpoints").iterdir() if p.name[0] != ".") == ["best.safetensors",
                                                                                     "last.safetensors"]
    stored = rows(run / "metrics.csv")["iw_nll"]
    assert stored["checkpoint_sha256"] == sha256_file(run / "checkpoints" / "best.safetensors")
    assert json.loads((run / "manifest.json").read_text())["migrated"][0]["checkpoints"]["best"]["sha256"] == \
        stored["checkpoint_sha256"]
    capsys.readouterr()
    assert cli("report", run, "--format", "json") == 0 and '"stale": "no"' in capsys.readouterr().out
    assert cli("evaluate", run, "--iw-samples", 4, "--seed", 5, "--quiet") == 0
    assert cli("evaluate", run, "--iw-samples", 4, "--quiet") == 0  # the same evaluation again
    after = rows(run / "metrics.csv")
    assert {k: after[k]["value"] for k in before} == {k: before[k]["value"] for k in before}
    assert cli("migrate", run, "--quiet") == 0  # nothing left to convert
