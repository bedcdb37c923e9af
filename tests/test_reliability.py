"""Issue #17's bad inputs and data-binding cases through the real entry point: exit code, one line
on stderr, the named file or option (docs/reliability.md)."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest

from test_faults import TRAIN, cli, write_corpus

from duvae_cli.data import binding, load_dataset


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """data/toy and a trained runs/r on it."""
    root = tmp_path_factory.mktemp("reliability")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert cli("prepare", "text", "--train", write_corpus(root / "corpus.txt"), "--as", "toy", "--quiet") == 0
        assert cli(*TRAIN, "--epochs", "1", "--run-dir", "runs/r") == 0
    finally:
        os.chdir(cwd)
    return root


def _run(capsys, *args) -> tuple[int, list[str]]:
    capsys.readouterr()
    code = cli(*args)
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("content, needle", [
    ("0\ta b\n2000000000\tc d\n", "line 2: label 2000000000 is above 100,000"),
    ("0\ta b\n99999999999999999999\tc d\n", "line 2: label 99999999999999999999 is above 100,000"),
    ("0\ta b\n1\tc\n500\tc d\n", "line 3: label 500 is above the number of examples (3)"),
    ("a b\nc\x00d\n", "line 2: NUL byte at column 2"),
])
def test_bad_corpus_lines_name_file_and_line(tmp_path, monkeypatch, capsys, content, needle):
    monkeypatch.chdir(tmp_path)
    corpus = tmp_path / "bad.txt"
    corpus.write_text(content)
    code, err = _run(capsys, "prepare", "text", "--train", corpus, "--split", "1,0,0")
    assert code == 1 and len(err) == 1 and str(corpus) in err[0] and needle in err[0], err
    assert not (tmp_path / "data").exists()


def test_min_freq_that_unks_most_tokens_warns(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, err = _run(capsys, "prepare", "text", "--train", write_corpus(tmp_path / "c.txt"), "--min-freq", 1000000)
    warnings = [line for line in err if "warning" in line]
    assert code == 0 and len(warnings) == 1 and "100% of the train tokens are <unk>" in warnings[0], err


@pytest.mark.parametrize("args, code, needle", [
    (("report", "runs/r", "--metrics", "bogus"), 2, "--metrics bogus: unknown metric"),
    (("visualize", "runs/r", "--kind", "samples", "--max-length", "-3"), 2, "--max-length -3: must be in [1, 100000]"),
])
def test_option_errors(ws, monkeypatch, capsys, args, code, needle):
    monkeypatch.chdir(ws)
    got, err = _run(capsys, *args)
    assert got == code and len(err) == 1 and needle in err[0], err


def test_corrupt_config_on_resume_names_the_file(ws, tmp_path, monkeypatch, capsys):
    import shutil

    monkeypatch.chdir(ws)
    shutil.copytree(ws / "runs" / "r", tmp_path / "broken")
    (tmp_path / "broken" / "config.json").write_text('{"lr": 1.0,')
    code, err = _run(capsys, "train", "--resume", tmp_path / "broken")
    assert code == 1 and len(err) == 1 and f"{tmp_path / 'broken' / 'config.json'}: unreadable" in err[0], err


def test_tampered_partial_evaluation_is_ignored_with_one_line(ws, monkeypatch, capsys):
    monkeypatch.chdir(ws)
    args = ("evaluate", "runs/r", "--split", "valid", "--iw-samples", 3, "--seed", 11)
    assert cli(*args, "--quiet") == 0
    import duvae_cli.metrics.report as report

    seen = {}
    real = report.PartialResults

    def spy(root, key, flush):
        seen["p"] = real(root, key, flush)
        return seen["p"]

    monkeypatch.setattr(report, "PartialResults", spy)
    assert cli(*args, "--quiet", "--iw-samples", 2) == 0  # learn the folder name of this key
    directory = seen["p"].directory
    directory.mkdir(parents=True)
    n = seen["p"].key["n_examples"]
    np.savez(directory / "part-000000.npz", index=np.array([n + 5]), iw_nll=np.zeros(1))  # past the split
    code, err = _run(capsys, *args, "--iw-samples", 2)
    assert code == 0 and any("1 unreadable partial file(s) ignored; recomputing" in line for line in err), err
    assert not directory.exists()  # done: the partial results are gone


def _evaluate_err(capsys, run) -> tuple[int, list[str]]:
    return _run(capsys, "evaluate", run, "--split", "test", "--iw-samples", 2)


def test_reprepared_dataset_other_vocabulary_is_refused(ws, monkeypatch, capsys):
    monkeypatch.chdir(ws)
    data = ws / "data" / "toy" / "dataset.h5"
    original = data.read_bytes()
    vocab = load_dataset(data).vocab
    try:
        (ws / "reversed.txt").write_text("\n".join(vocab[:4] + vocab[4:][::-1]) + "\n")  # same words, other ids
        assert cli("prepare", "text", "--train", ws / "corpus.txt", "--as", "toy", "--force", "--vocab",
                   ws / "reversed.txt", "--quiet") == 0
        code, err = _evaluate_err(capsys, "runs/r")
        assert code == 1 and len(err) == 1, err
        assert f"run {ws / 'runs' / 'r'} was trained on other data than {data}: vocabulary differs (same size, " \
            "30 ids map to other tokens; first: id 4 is" in err[0], err

        assert cli("prepare", "text", "--train", ws / "corpus.txt", "--as", "toy", "--force", "--vocab-size", 10,
                   "--quiet") == 0
        code, err = _evaluate_err(capsys, "runs/r")
        assert code == 1 and len(err) == 1 and "vocabulary of 34 tokens in the run, 10 in the dataset" in err[0], err
    finally:
        data.write_bytes(original)


def test_changed_split_same_vocabulary_is_reported_and_fingerprinted(ws, monkeypatch, capsys):
    monkeypatch.chdir(ws)
    data = ws / "data" / "toy" / "dataset.h5"
    original = data.read_bytes()
    vocab = load_dataset(data).vocab
    try:
        (ws / "same.txt").write_text("\n".join(vocab) + "\n")
        assert cli("prepare", "text", "--train", ws / "corpus.txt", "--as", "toy", "--force", "--vocab",
                   ws / "same.txt", "--seed", 9, "--quiet") == 0  # same vocabulary, other splits
        code, err = _evaluate_err(capsys, "runs/r")
        assert code == 0 and any("split test changed" in line and "same vocabulary" in line for line in err), err
        fingerprint = binding.fingerprint_of(load_dataset(data), "test")
        rows = [r for r in csv.DictReader(open(ws / "runs/r/metrics.csv")) if r["split"] == "test"]
        assert rows and {r["split_sha256"] for r in rows} == {fingerprint}
        code, err = _run(capsys, "train", "--resume", "runs/r", "--epochs", 2)
        assert code == 1 and len(err) == 1 and "split train changed" in err[0], err  # resume needs the same train
    finally:
        data.write_bytes(original)


def test_binding_is_stored_with_the_run(ws):
    stored = json.loads((ws / "runs" / "r" / "binding.json").read_text())
    dataset = load_dataset(ws / "data" / "toy" / "dataset.h5")
    assert stored["vocab"] == dataset.vocab
    assert stored["splits"] == {s: binding.split_fingerprint(dataset.splits[s]) for s in dataset.splits}
    assert stored["format"]["special_ids"] == {"pad_id": 0, "bos_id": 1, "eos_id": 2, "unk_id": 3}


def test_old_dead_end_run_dir_is_replaced_and_latest_needs_a_checkpoint(ws, monkeypatch, capsys):
    monkeypatch.chdir(ws)
    dead = ws / "runs" / "dead"
    (dead / "checkpoints").mkdir(parents=True)
    (dead / "config.json").write_text("{}")
    code, err = _run(capsys, *TRAIN, "--epochs", "1", "--run-dir", "runs/dead")
    assert code == 0 and (dead / "checkpoints" / "last.safetensors").exists()
    assert os.readlink(ws / "runs" / "latest") == "dead"
