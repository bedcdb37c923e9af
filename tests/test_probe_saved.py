"""`duvae classify` on labelled files (`--data FILE=LABEL`, LABEL<TAB> files, stdin), the probes it
saves (safetensors + JSON with their provenance), `--predict` with a saved probe, and a stale probe
refused (issue 32)."""

from __future__ import annotations

import io
import json
import shutil
import sys

import numpy as np
import pytest
from safetensors.numpy import load_file

from test_images_toyrun import image_run  # noqa: F401  (fixture)
from test_probe_toyrun import toy_run as shared_toy_run  # noqa: F401  (fixture)
from duvae_cli.probe.features import probe_features
from duvae_cli.runs.load import load_trained
from duvae_cli.use.inputs import fingerprint


@pytest.fixture(scope="module")
def toy_run(shared_toy_run, tmp_path_factory):  # noqa: F811
    copy = tmp_path_factory.mktemp("saved") / "du-2d"
    shutil.copytree(shared_toy_run, copy)
    return copy


def class_files(run, folder, split="train"):
    """One plain text file per class of a split (the sentiment.train.0 / .1 layout), and the texts."""
    trained = load_trained(run)
    data = trained.dataset.splits[split]
    texts = [trained.dataset.decode(data.sentence(i)) for i in range(len(data))]
    paths = []
    for label in range(3):
        path = folder / f"{split}.{label}"
        path.write_text("".join(t + "\n" for t, y in zip(texts, data.labels) if y == label), encoding="utf-8")
        paths.append(path)
    return paths, texts, data.labels


def test_classify_file_equals_label_saves_one_probe_per_budget_with_its_provenance(toy_run, tmp_path, duvae):
    paths, texts, _ = class_files(toy_run, tmp_path)
    result = duvae("classify", toy_run, *(a for k, p in enumerate(paths) for a in ("--data", f"{p}={k}")),
                   "--labels", "100", "--labels", "60", "--repeats", "2", "--json", "-q")
    assert result.code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert [r["labels"] for r in payload["results"]] == [100, 60]
    parts = payload["data"]
    assert sum(parts[role]["n"] for role in ("train", "valid", "test")) == len(texts)  # every sentence, once
    assert parts["test"]["n"] == sum(max(1, round(0.2 * n)) for n in np.bincount(load_trained(toy_run).dataset
                                                                                 .splits["train"].labels))
    trained = load_trained(toy_run)
    for budget in (100, 60):
        info = json.loads((toy_run / "probes" / f"labels-{budget}.json").read_text())
        weights = load_file(toy_run / "probes" / f"labels-{budget}.safetensors")  # safetensors: no pickle
        assert weights["weight"].shape == (3, trained.config.latent_dim) and weights["bias"].shape == (3,)
        assert info["checkpoint_sha256"] == trained.checkpoint_sha256 and info["checkpoint"] == "best"
        assert info["labels"] == budget and info["seed"] == 783435 and info["repeat"] == 0
        assert info["data"]["files"]["train"]["fingerprint"] == parts["train"]["fingerprint"]
        assert info["data"]["files"]["test"]["fingerprint"] == parts["test"]["fingerprint"]
        assert set(info["data"]["split_sha256"]) == {"train", "valid", "test"}
        row = next(r for r in payload["results"] if r["labels"] == budget)
        assert info["test_accuracy"] == row["accuracies"][0]  # the first repeat's probe


def fresh(toy_run, tmp_path):
    """A copy of the run without saved probes."""
    run = tmp_path / "run"
    shutil.copytree(toy_run, run, ignore=shutil.ignore_patterns("probes"))
    return run


def test_predict_applies_the_saved_probe_one_line_per_example(toy_run, tmp_path, duvae):
    toy_run = fresh(toy_run, tmp_path)
    paths, _, _ = class_files(toy_run, tmp_path)
    assert duvae("classify", toy_run, *(a for k, p in enumerate(paths) for a in ("--data", f"{p}={k}")),
                 "--labels", "100", "-q").code == 0
    trained = load_trained(toy_run)
    test = trained.dataset.splits["test"]
    unlabelled = tmp_path / "big.txt"
    unlabelled.write_text("".join(trained.dataset.decode(test.sentence(i)) + "\n" for i in range(len(test))))
    result = duvae("classify", toy_run, "--predict", unlabelled, "--labels", "100", "-q")
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(test)
    weights = load_file(toy_run / "probes" / "labels-100.safetensors")
    logits = probe_features(trained.model, test, None, trained.config.eval_batch_size) @ weights["weight"].T \
        + weights["bias"]
    probabilities = np.exp(logits - logits.max(1, keepdims=True))
    probabilities /= probabilities.sum(1, keepdims=True)
    labels = [int(line.split("\t")[0]) for line in lines]
    assert labels == logits.argmax(1).tolist()
    assert [float(line.split("\t")[1]) for line in lines] == pytest.approx(probabilities.max(1), abs=1e-6)
    out = duvae("classify", toy_run, "--predict", unlabelled, "--out", tmp_path / "p.tsv", "-q")  # the only probe
    assert out.code == 0 and (tmp_path / "p.tsv").read_text().splitlines() == lines


def test_labelled_stdin_and_role_files_are_read_too(toy_run, tmp_path, duvae, monkeypatch):
    trained = load_trained(toy_run)
    data = trained.dataset.splits["train"]
    lines = "".join(f"{data.labels[i]}\t{trained.dataset.decode(data.sentence(i))}\n" for i in range(len(data)))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(lines.encode())))
    result = duvae("classify", toy_run, "--data", "-", "--labels", "30", "--json", "-q")
    assert result.code == 0, result.stderr
    parts = json.loads(result.stdout)["data"]
    assert parts["train"]["source"].startswith("stdin (train part")
    assert sum(p["n"] for p in parts.values()) == len(data)


@pytest.mark.parametrize("specs, words", [
    (["{a}=0", "train={a}"], "not both"),
    (["{a}=zero"], "LABEL 'zero' is not a class id"),
    (["{plain}"], "no labels; give"),
    (["{a}=0", "{tiny}=1"], "class 1 has 2 example(s)"),
    (["-", "-=1"], "standard input can be read once"),
])
def test_bad_data_specs_are_one_line(toy_run, tmp_path, duvae, specs, words):
    (tmp_path / "plain.txt").write_text("w4 w5\nw6 w7\nw8 w9\n")
    (tmp_path / "tiny.txt").write_text("w4 w5\nw6 w7\n")
    values = {"a": tmp_path / "plain.txt", "plain": tmp_path / "plain.txt", "tiny": tmp_path / "tiny.txt"}
    result = duvae("classify", toy_run, *(a for s in specs for a in ("--data", s.format(**values))))
    assert result.code in (1, 2) and words in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_probe_of_a_checkpoint_that_changed_is_refused_as_stale(toy_run, tmp_path, duvae):
    run = fresh(toy_run, tmp_path)
    assert duvae("classify", run, "--labels", "20", "--checkpoint", "last", "-q").code == 0
    text = tmp_path / "t.txt"
    text.write_text("w4 w5 w6\nw12 w13\n")
    assert duvae("classify", run, "--predict", text, "--checkpoint", "last", "-q").stdout.count("\n") == 2
    other = duvae("classify", run, "--predict", text, "-q")  # best: not the probe's checkpoint
    assert other.code == 2 and "use --checkpoint last" in other.stderr
    assert duvae("train", "--resume", run, "--epochs", "3", "-q").code == 0  # `last` changes
    stale = duvae("classify", run, "--predict", text, "--checkpoint", "last")
    assert stale.code == 1 and stale.stdout == ""
    assert stale.stderr.strip().splitlines() == [stale.stderr.strip()] and "labels-20.json: stale: " in stale.stderr


def test_predict_without_a_saved_probe_says_how_to_make_one(toy_run, tmp_path, duvae):
    run = fresh(toy_run, tmp_path)
    (tmp_path / "t.txt").write_text("w4 w5\n")
    result = duvae("classify", run, "--predict", tmp_path / "t.txt")
    assert result.code == 2 and "no saved probe; train one first: duvae classify RUN --labels N" in result.stderr


def test_an_image_run_probes_labelled_npz_files_and_predicts_images(image_run, tmp_path, duvae):
    run = tmp_path / "run"
    shutil.copytree(image_run, run)
    trained = load_trained(run)
    images, labels = trained.dataset.splits["train"].images, trained.dataset.splits["train"].character
    for k in range(2):
        np.savez(tmp_path / f"c{k}.npz", images=images[labels % 2 == k])
    result = duvae("classify", run, "--data", f"{tmp_path / 'c0.npz'}=0", "--data", f"{tmp_path / 'c1.npz'}=1",
                   "--labels", "40", "-q")
    assert result.code == 0, result.stderr
    np.savez(tmp_path / "new.npz", images=trained.dataset.splits["test"].images[:9])
    predicted = duvae("classify", run, "--predict", tmp_path / "new.npz", "-q")
    assert predicted.code == 0, predicted.stderr
    assert len(predicted.stdout.splitlines()) == 9
    assert {line.split("\t")[0] for line in predicted.stdout.splitlines()} <= {"0", "1"}


def test_pooled_parts_are_fingerprinted_as_what_the_model_reads(toy_run, tmp_path):
    from duvae_cli.use.labelled import read_labelled

    paths, _, _ = class_files(toy_run, tmp_path)
    dataset = load_trained(toy_run).dataset
    splits, _ = read_labelled([f"{p}={k}" for k, p in enumerate(paths)], dataset, seed=1)
    again, _ = read_labelled([f"{p}={k}" for k, p in enumerate(paths)], dataset, seed=1)
    other, _ = read_labelled([f"{p}={k}" for k, p in enumerate(paths)], dataset, seed=2)
    assert fingerprint(splits["test"].split) == fingerprint(again["test"].split)  # seeded: reproducible
    assert fingerprint(splits["test"].split) != fingerprint(other["test"].split)
    for role, data in splits.items():
        assert set(np.unique(data.split.labels)) == {0, 1, 2}, role  # every class in every part
