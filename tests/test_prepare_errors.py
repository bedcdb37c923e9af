"""Bad input never gives a traceback or a half-written dataset: one line naming the file, exit != 0."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]


def _text(folder: Path, name: str, content: bytes) -> Path:
    path = folder / name
    path.write_bytes(content)
    return path


def _npz(folder: Path, name: str, **arrays) -> Path:
    np.savez(folder / name, **arrays)
    return folder / name


def _zip(folder: Path, name: str, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(folder / name, "w") as zf:
        for member, data in members.items():
            zf.writestr(member, data)
    return folder


def _valid_and_test_only(folder: Path) -> Path:
    _text(folder, "ptb.valid.txt", b"a\n")
    _text(folder, "ptb.test.txt", b"b\n")
    return folder


# Each case: (arguments given the source folder, text the error must contain, expected exit code).
CASES = {
    "missing file": (lambda d: ["text", "--train", d / "nope.txt"], ["nope.txt", "no such file"], 2),
    "empty file": (lambda d: ["text", "--train", _text(d, "e.txt", b"\n  \n")], ["e.txt", "empty file"], 1),
    "not utf-8": (lambda d: ["text", "--train", _text(d, "b.txt", b"ok\nfine\nbad \xff byte\n")],
                  ["b.txt", "line 3", "not UTF-8"], 1),
    "label not an integer": (lambda d: ["text", "--train", _text(d, "l.txt", b"1\tgood\npos\tbad\n")],
                             ["l.txt", "line 2", "'pos' is not an integer"], 1),
    "negative label": (lambda d: ["text", "--train", _text(d, "n.txt", b"1\tgood\n-1\tbad\n")],
                       ["n.txt", "line 2", "negative"], 1),
    "mixed labelled and plain": (lambda d: ["text", "--train", _text(d, "m.txt", b"1\tgood\n\nplain line\n")],
                                 ["m.txt", "line 3", "mixed"], 1),
    "plain then labelled": (lambda d: ["text", "--train", _text(d, "p.txt", b"plain\n0\tlabelled\n")],
                            ["p.txt", "line 2", "mixed"], 1),
    "short-yelp without labels": (
        lambda d: ["short-yelp", "--source", _text(d, "short_yelp.valid.txt", b"no label here\n").parent],
        ["short_yelp.valid.txt", "line 1", "no label"], 1),
    "vocab without specials": (
        lambda d: ["text", "--train", _text(d, "t.txt", b"a\n"), "--vocab", _text(d, "v.txt", b"a\nb\n")],
        ["v.txt", "<pad> <s> </s> <unk>"], 1),
    "vocab not utf-8": (
        lambda d: ["text", "--train", _text(d, "t.txt", b"a\n"), "--vocab", _text(d, "v.txt", b"<pad>\n\xe9\n")],
        ["v.txt", "line 2", "not UTF-8"], 1),
    "bad output name": (lambda d: ["text", "--train", _text(d, "t.txt", b"a\n"), "--as", "../up"], ["--as"], 2),
    "nothing left to train on": (
        lambda d: ["text", "--train", _text(d, "t.txt", b"a b c\nd e\n"), "--valid", d / "t.txt", "--max-length", "1"],
        ["t.txt", "no train sentence left", "2 too long"], 1),
    "source and train together": (lambda d: ["text", "--source", d, "--train", d / "t.txt"], ["--source"], 2),
    "npz with wrong keys": (lambda d: ["omniglot", "--source", _npz(d, "images_background.npz", x=np.zeros(3))],
                            ["images_background.npz", "'images' and 'labels'"], 1),
    "npz with wrong shape": (
        lambda d: ["omniglot", "--source", _npz(d, "images_background.npz", images=np.ones((2, 20, 28, 28), bool),
                                                labels=np.zeros((2, 20), int))],
        ["images_background.npz", "expected"], 1),
    "not an npz": (lambda d: ["mnist", "--source", _text(d, "binarized_mnist.npz", b"hello")],
                   ["binarized_mnist.npz", "not a readable .npz"], 1),
    "mnist npz with wrong keys": (lambda d: ["mnist", "--source", _npz(d, "binarized_mnist.npz", a=np.zeros(2))],
                                  ["binarized_mnist.npz", "train, valid, test"], 1),
    "mnist amat bad line": (
        lambda d: ["mnist", "--source", _text(d, "binarized_mnist_train.amat", b"0 1\n").parent],
        ["binarized_mnist_train.amat", "line 1", "784"], 1),
    "zip that is not omniglot": (
        lambda d: ["omniglot", "--source", _zip(d, "images_background.zip", {"readme.txt": b"hi"})],
        ["images_background.zip", "no Omniglot images"], 1),
    "corrupt zip": (lambda d: ["omniglot", "--source", _text(d, "images_background.zip", b"PK not really")],
                    ["images_background.zip", "not a readable zip"], 1),
    "no train file": (lambda d: ["ptb", "--source", _valid_and_test_only(d)],
                      ["no train file", "ptb.train.txt"], 1),
    "missing source": (lambda d: ["ptb", "--source", d / "absent"], ["absent", "no such file"], 2),
    "url not found": (lambda d: ["ptb", "--source", (d / "gone.txt").as_uri()], ["gone.txt", "download failed"], 1),
    "unknown dataset": (lambda d: ["imagenet"], ["'imagenet'", "synthetic, ptb"], 2),
    "bad split": (lambda d: ["text", "--train", _text(d, "t.txt", b"a\n"), "--split", "0.5,0.1"], ["--split"], 2),
    "option that does not apply": (lambda d: ["omniglot", "--vocab-size", "10"], ["--vocab-size", "omniglot"], 2),
    "no local copy and no url": (lambda d: ["yelp"], ["yelp", "--source"], 2),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_named_line(duvae, tmp_path, monkeypatch, case):
    make_args, must_contain, code = CASES[case]
    source = tmp_path / "src"
    source.mkdir()
    monkeypatch.setenv("DUVAE_RAW_DATA", str(tmp_path / "no-local-copies"))
    out = tmp_path / "out"
    result = duvae("prepare", *make_args(source), "--out", out)
    assert result.code == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("duvae: error: "), result.stderr
    for text in must_contain:
        assert text in lines[0]
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not out.exists() or not any(out.rglob("*")), list(out.rglob("*"))


def test_existing_output_needs_force(duvae, tmp_path):
    train = _text(tmp_path, "t.txt", b"a b\nb c\n")
    args = ["prepare", "text", "--train", train, "--valid", train, "--out", tmp_path / "out", "-q"]
    assert duvae(*args).code == 0
    path = tmp_path / "out" / "text" / "dataset.h5"
    before = path.read_bytes()
    again = duvae(*args)
    assert again.code == 2 and "already exists" in again.stderr and str(path) in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1 and path.read_bytes() == before
    train.write_bytes(b"x y z\n")
    assert duvae(*args, "--force").code == 0 and path.read_bytes() != before
    assert sorted(p.name for p in path.parent.iterdir()) == ["dataset.h5"]


def test_error_end_to_end_in_a_subprocess(duvae_subprocess, tmp_path):
    bad = _text(tmp_path, "b.txt", b"fine\n\xc3(\n")
    result = duvae_subprocess("prepare", "text", "--train", bad, "--out", tmp_path / "out")
    assert result.code == 1
    assert result.stderr.strip().splitlines() == [f"duvae: error: {bad}: line 2: not UTF-8 (byte 0xc3 at column 1)"]
    assert not (tmp_path / "out").exists()
