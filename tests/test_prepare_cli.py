"""The `duvae prepare` command as a user meets it: help, table, --json, URL sources."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from duvae_cli.data import load_dataset


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("command", ["prepare", "train", "evaluate", "classify", "visualize"])
def test_help_of_every_command_shows_an_example(duvae, command):
    result = duvae(command, "--help")
    assert result.code == 0
    assert any(line.strip().startswith("Example:") for line in result.stdout.splitlines())


def test_table_then_sources_and_notes_on_stdout(duvae, tmp_path):
    train = write(tmp_path / "t.txt", "0\ta b\n1\tb c\n\n")
    result = duvae("prepare", "text", "--train", train, "--valid", train, "--out", tmp_path / "out", "--quiet")
    assert result.code == 0 and result.stderr == ""
    assert "text, vocabulary 7 (word)" in result.stdout
    assert "0:1 1:1" in result.stdout and "1 empty" in result.stdout
    assert f"written: {tmp_path / 'out' / 'text' / 'dataset.h5'}" in result.stdout
    assert "note: no test file: no test split written" in result.stdout


def test_json_is_the_summary_dict(duvae, tmp_path):
    train = write(tmp_path / "t.txt", "a b\nb c\n")
    result = duvae("prepare", "text", "--train", train, "--split", "0.5,0.5,0", "--out", tmp_path / "o", "--json", "-q")
    summary = json.loads(result.stdout)
    assert summary["vocab_size"] == 6 and summary["kind"] == "text" and summary["num_labels"] == 0
    assert [s["split"] for s in summary["splits"]] == ["train", "valid"]
    assert summary["sha256"] == load_dataset(summary["path"]).sha256


def test_file_url_folder_fetches_the_expected_files(duvae, tmp_path):
    src = tmp_path / "remote"
    write(src / "yelp.train.txt", "1\tgood\n")
    write(src / "yelp.valid.txt", "0\tbad\n")
    url = src.as_uri() + "/"
    result = duvae("prepare", "yelp", "--source", url, "--out", tmp_path / "out", "--json", "-q")
    assert result.code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert [s["split"] for s in summary["splits"]] == ["train", "valid"]
    assert f"downloaded from {url}" in summary["notes"]


def test_file_url_archive_is_unpacked(duvae, tmp_path):
    inner = tmp_path / "simple-examples" / "data"
    write(inner / "ptb.train.txt", " a b <unk> \n")
    write(inner / "ptb.valid.txt", " a \n")
    archive = tmp_path / "simple-examples.tgz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(tmp_path / "simple-examples", arcname="simple-examples")
    result = duvae("prepare", "ptb", "--source", archive.as_uri(), "--out", tmp_path / "out", "-q")
    assert result.code == 0, result.stderr
    ds = load_dataset(tmp_path / "out" / "ptb" / "dataset.h5")
    assert ds.vocab[4:] == ["a", "b"] and len(ds.splits["valid"]) == 1


def test_known_checksum_mismatch_is_refused(duvae, tmp_path):
    fake = write(tmp_path / "remote" / "ptb.train.txt", "not the real ptb\n")
    result = duvae("prepare", "ptb", "--source", fake.as_uri(), "--out", tmp_path / "out")
    assert result.code == 1 and "differs from the known" in result.stderr
    assert not (tmp_path / "out").exists()


def test_file_url_of_the_real_ptb_passes_its_checksums(duvae, tmp_path, shared_data):
    url = (shared_data / "ptb").as_uri() + "/"
    result = duvae("prepare", "ptb", "--source", url, "--out", tmp_path / "out", "--json", "-q")
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["splits"][0]["tokens"] == 887521


def test_default_source_is_the_local_copy(duvae, tmp_path, monkeypatch):
    write(tmp_path / "raw" / "ptb" / "ptb.train.txt", " a b \n")
    write(tmp_path / "raw" / "ptb" / "ptb.valid.txt", " a \n")
    monkeypatch.setenv("DUVAE_RAW_DATA", str(tmp_path / "raw"))
    result = duvae("prepare", "ptb", "--out", tmp_path / "out", "--json", "-q")
    notes = json.loads(result.stdout)["notes"]
    assert notes[0] == f"read from the local copy {tmp_path / 'raw' / 'ptb'}"
    assert "ptb.train.txt: sha256 differs from the registry's known copy" in notes


def test_prepare_help_names_every_registered_dataset(duvae):
    from duvae_cli.prepare import DATASETS

    text = " ".join(duvae("prepare", "--help").stdout.replace("│", " ").split())
    assert all(name in text for name in DATASETS)
