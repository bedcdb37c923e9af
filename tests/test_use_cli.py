"""`duvae encode`, `duvae generate`, `evaluate/classify --data` on the toy run (tests/test_probe_toyrun.py)."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from test_probe_toyrun import toy_run as shared_toy_run  # noqa: F401  (fixture)
from duvae_cli.data.store import load_dataset
from duvae_cli.probe.features import probe_features
from duvae_cli.runs.load import load_trained


@pytest.fixture(scope="module")
def toy_run(shared_toy_run, tmp_path_factory):  # noqa: F811
    """A copy of the session's toy run: these tests write metrics and probes into it."""
    import shutil

    copy = tmp_path_factory.mktemp("use") / "du-2d"
    shutil.copytree(shared_toy_run, copy)
    return copy


def split_file(run, tmp_path, split="test", labelled=True, name=None):
    """The sentences of one of the run's splits, written back as a text file (LABEL<TAB> lines)."""
    trained = load_trained(run)
    data = trained.dataset.splits[split]
    lines = [(f"{data.labels[i]}\t" if labelled else "") + trained.dataset.decode(data.sentence(i))
             for i in range(len(data))]
    path = tmp_path / (name or f"{split}.txt")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, trained


def test_encode_of_a_split_equals_classify_means_bit_for_bit_in_every_format(toy_run, tmp_path, duvae):
    path, trained = split_file(toy_run, tmp_path)
    means = probe_features(trained.model, trained.dataset.splits["test"], None,
                           trained.config.eval_batch_size)  # what `classify` reads, float64
    npy, csv_path, h5 = tmp_path / "c.npy", tmp_path / "c.csv", tmp_path / "c.h5"
    for out in (npy, csv_path, h5):
        result = duvae("encode", toy_run, path, "--out", out, "--quiet")
        assert result.code == 0, result.stderr
    rows = np.load(npy)
    assert np.array_equal(rows["mean"].astype(np.float64), means)
    assert np.array_equal(rows["line"], np.arange(1, len(means) + 1))
    assert np.array_equal(rows["label"], trained.dataset.splits["test"].labels)
    with h5py.File(h5) as f:
        assert np.array_equal(f["mean"][()], rows["mean"]) and np.array_equal(f["logvar"][()], rows["logvar"])
        assert f.attrs["n_unk"] == 0 and f.attrs["columns"] == "mean,logvar"
    table = np.loadtxt(csv_path, delimiter=",", skiprows=1, dtype=np.float64)
    assert np.array_equal(table[:, 3:5].astype(np.float32), rows["mean"])  # 9 digits round-trip float32
    lines = duvae("encode", toy_run, path, "--quiet").stdout.splitlines()
    first = json.loads(lines[0])
    assert len(lines) == len(means) and first["line"] == 1 and first["mean"] == rows["mean"][0].tolist()
    from_h5 = duvae("encode", toy_run, trained.dataset.path, "--split", "test", "--out", tmp_path / "d.npy", "-q")
    assert from_h5.code == 0 and np.array_equal(np.load(tmp_path / "d.npy")["mean"], rows["mean"])


def test_unknown_words_are_counted_named_and_in_the_json(toy_run, tmp_path, duvae):
    path = tmp_path / "new.txt"
    path.write_text("w1 w2 zebra\n\nw3 quagga zebra w4\n", encoding="utf-8")
    result = duvae("encode", toy_run, path, "--out", tmp_path / "n.npy", "--quiet")  # notes show with -q
    assert result.code == 0, result.stderr
    assert "7 tokens, 3 unknown (42.86%: 'zebra' 2, 'quagga' 1)" in result.stderr
    assert "warning: " in result.stderr and "42.86% of the tokens are unknown" in result.stderr
    rows = np.load(tmp_path / "n.npy")
    assert rows["line"].tolist() == [1, 3]  # the empty line 2 is skipped, lines keep their numbers
    summary = json.loads(duvae("encode", toy_run, path, "--out", tmp_path / "n.h5", "--json", "-q").stdout)
    assert summary["n_unk"] == 3 and summary["n_tokens"] == 7
    assert summary["familiarity"]["unknown_words"] == [{"word": "zebra", "count": 2}, {"word": "quagga", "count": 1}]
    assert summary["familiarity"]["unknown_share"] == pytest.approx(3 / 7)


def test_all_unknown_text_warns_with_the_share_and_max_unknown_refuses_it(toy_run, tmp_path, duvae):
    oov = tmp_path / "oov.txt"
    oov.write_text("zebra quagga okapi\ngnu zebra\n", encoding="utf-8")
    warned = duvae("encode", toy_run, oov, "-q")
    assert warned.code == 0 and "warning: " in warned.stderr
    assert "100.00% of the tokens are unknown to the run's vocabulary (above 5%" in warned.stderr
    below = duvae("encode", toy_run, oov, "--warn-unknown", "1", "-q")
    assert below.code == 0 and "warning" not in below.stderr and "5 unknown (100.00%" in below.stderr
    for command in (("encode", toy_run, oov), ("evaluate", toy_run, "--data", oov, "--iw-samples", "2"),
                    ("generate", toy_run, "--reconstruct", oov)):
        refused = duvae(*command, "--max-unknown", "0.5")
        assert refused.code == 1 and refused.stdout == "", refused.stderr
        assert refused.stderr.strip().splitlines() == [f"duvae: error: {oov}: 100.00% of the tokens are unknown "
                                                      "to the run's vocabulary, above --max-unknown 0.5"]
    assert not (tmp_path / "metrics.csv").exists() and duvae("encode", toy_run, oov, "--max-unknown", "2").code == 2


def test_sentences_longer_than_any_in_training_are_reported_warned_and_refusable(toy_run, tmp_path, duvae):
    longest = int(load_trained(toy_run).dataset.splits["train"].lengths.max())
    path = tmp_path / "long.txt"
    path.write_text("w4 w5\n" + " ".join(["w4"] * (5 * longest)) + "\n", encoding="utf-8")
    result = duvae("evaluate", toy_run, "--data", path, "--iw-samples", "2", "--json", "-q")
    assert result.code == 0, result.stderr
    assert f"1 of 2 sentences (50.00%) are longer than any the run trained on ({longest} tokens; longest " \
           f"here {5 * longest})" in result.stderr
    report = json.loads(result.stdout)["familiarity"]
    assert report["longest_training"] == longest and report["longer_than_training"] == 1
    refused = duvae("encode", toy_run, path, "--max-longer", "0.25")
    assert refused.code == 1 and "50.00% of the sentences are longer than the longest training sentence" \
        in refused.stderr and str(path) in refused.stderr


def test_the_api_warns_and_refuses_like_the_commands(toy_run):
    import warnings

    import duvae_cli
    from duvae_cli.errors import DuvaeError
    from duvae_cli.use.familiar import InputChecks, UnfamiliarInput

    model = duvae_cli.load(toy_run, device="cpu")
    with pytest.warns(UnfamiliarInput, match="66.67% of the tokens are unknown"):
        model.encode(["w4 zebra quagga"])
    assert model.last_input["unknown_words"][0] == {"word": "zebra", "count": 1}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.codes(["w4 w5 w6"])  # familiar text: no warning
    assert model.last_input["unknown_tokens"] == 0
    model.checks = InputChecks(max_unknown=0.5)
    with pytest.raises(DuvaeError, match="above --max-unknown 0.5"):
        model.reconstruct(["zebra quagga w4"])


def test_evaluate_data_on_a_splits_own_sentences_gives_that_splits_numbers(toy_run, tmp_path, duvae):
    path, _ = split_file(toy_run, tmp_path)
    own = json.loads(duvae("evaluate", toy_run, "--split", "test", "--iw-samples", "8", "--json", "-q").stdout)
    new = duvae("evaluate", toy_run, "--data", path, "--iw-samples", "8", "--json", "-q")
    assert new.code == 0, new.stderr
    new = json.loads(new.stdout)
    assert new["split"].startswith("test@") and new["split"] != "test"
    assert {k: v["value"] for k, v in new["metrics"].items()} == {k: v["value"] for k, v in own["metrics"].items()}
    table = duvae("report", toy_run, "--split", new["split"], "--format", "csv")
    assert table.code == 0 and f"{own['metrics']['iw_nll']['value']:.2f}"[:4] in table.stdout
    with h5py.File(toy_run / "metrics.h5") as f:
        assert new["split"] in f and "test" in f  # next to the run's own split


def test_classify_data_writes_under_the_datas_labels_and_keeps_the_runs_rows(toy_run, tmp_path, duvae):
    files = {s: split_file(toy_run, tmp_path, s)[0] for s in ("train", "valid", "test")}
    own = duvae("classify", toy_run, "--labels", "20", "-q", "--json")
    assert own.code == 0, own.stderr
    result = duvae("classify", toy_run, *(a for s, p in files.items() for a in ("--data", f"{s}={p}")),
                   "--json", "-q")
    assert result.code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["results"][0]["n_train"] == 300  # default budget: every labelled train example
    probe = (toy_run / "probe.csv").read_text()
    assert ",test," in probe and ",test@" in probe and ",valid@" in probe
    with h5py.File(toy_run / "metrics.h5") as f:
        assert "probe" in f and any(name.startswith("probe@test@") for name in f)


def test_generate_reconstruct_sample_and_interpolate(toy_run, tmp_path, duvae):
    path, trained = split_file(toy_run, tmp_path, labelled=False)
    rec = duvae("generate", toy_run, "--reconstruct", path, "--decode", "beam", "--beam", "3", "--json", "-q")
    assert rec.code == 0, rec.stderr
    rows = [json.loads(line) for line in rec.stdout.splitlines()]
    assert len(rows) == len(trained.dataset.splits["test"]) and rows[0]["input"] == path.read_text().split("\n")[0]
    samples = duvae("generate", toy_run, "--sample", "3", "--decode", "sample", "--seed", "1")
    assert samples.code == 0 and len(samples.stdout.splitlines()) == 3
    again = duvae("generate", toy_run, "--sample", "3", "--decode", "sample", "--seed", "1")
    assert again.stdout == samples.stdout  # seeded
    inter = duvae("generate", toy_run, "--interpolate", "w4 w5 w6", "w20 w21 w22", "--steps", "4", "--json")
    assert [json.loads(line)["t"] for line in inter.stdout.splitlines()] == pytest.approx([0, 1 / 3, 2 / 3, 1])


def test_interpolation_endpoints_decode_from_the_endpoints_means(toy_run):
    import duvae_cli
    from duvae_cli.use.generate import interpolation_codes

    model = duvae_cli.load(toy_run, device="cpu")
    a, b = "w4 w5 w6 w7", "w20 w21 w22"
    codes = model.codes([a, b])
    t, path = interpolation_codes(codes[0], codes[1], 5)
    assert t[0] == 0 and t[-1] == 1
    assert np.array_equal(path[0], codes[0]) and np.array_equal(path[-1], codes[1])
    means = model.encode([a, b]).mean
    assert isinstance(codes, np.ndarray) and codes.dtype == np.float32  # numpy, as encode's arrays
    assert np.array_equal(codes, means)  # no flow: the code is the posterior mean
    sentences = model.interpolate(a, b, steps=5)
    assert sentences[0] == model.reconstruct([a])[0] and sentences[-1] == model.reconstruct([b])[0]


@pytest.mark.parametrize("args, code, words", [
    (("encode", "{run}", "{bad}"), 1, "line 2: no label, but line 1 has one"),
    (("encode", "{run}", "{good}", "--out", "x.parquet"), 2, "--out x.parquet: the extension"),
    (("encode", "{run}", "{npz}"), 2, "image data, but the run was trained on text"),
    (("encode", "{run}", "{good}", "--split", "valid"), 2, "--split valid: only for a prepared dataset.h5"),
    (("encode", "{run}", "missing.txt"), 2, "missing.txt: no such file"),
    (("classify", "{run}", "--data", "train={good}"), 2, "--data: missing valid=FILE, test=FILE"),
    (("classify", "{run}", "--data", "train={good}", "--data", "valid={good}", "--data", "test={good}"), 1,
     "no labels; the train data must be LABEL<TAB>sentence lines"),
    (("generate", "{run}"), 2, "give exactly one of --reconstruct FILE, --sample N, --interpolate A B"),
    (("generate", "{run}", "--sample", "2", "--decode", "top-k"), 2, "--decode 'top-k': choose greedy, beam or sample"),
    (("generate", "{run}", "--interpolate", "w4", "w5", "--steps", "1"), 2, "--steps 1: must be in [2, 10000]"),
])
def test_bad_inputs_are_one_line(toy_run, tmp_path, duvae, args, code, words):
    (tmp_path / "bad.txt").write_text("0\tw4 w5\nw6 w7\n")
    (tmp_path / "good.txt").write_text("w4 w5\nw6 w7\n")
    np.savez(tmp_path / "img.npz", images=np.zeros((2, 28, 28), dtype=np.uint8))
    values = {"run": toy_run, "bad": tmp_path / "bad.txt", "good": tmp_path / "good.txt", "npz": tmp_path / "img.npz"}
    result = duvae(*(a.format(**values) for a in args))
    assert result.code == code, result.stderr
    assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_image_inputs_are_binarised_once_and_fingerprinted():
    from duvae_cli.use.inputs import fingerprint, from_images

    grey = np.random.default_rng(0).integers(0, 256, (3, 784)).astype(np.uint8)
    one, two = from_images(grey), from_images(grey.reshape(3, 1, 28, 28))
    assert one.split.binarized and set(np.unique(one.split.images)) <= {0, 1}
    assert fingerprint(one.split) == fingerprint(two.split)
    binary = from_images(np.ones((2, 28, 28), dtype=bool))
    assert binary.split.images.sum() == 2 * 784 and binary.split.binarized
    with pytest.raises(Exception, match="shape"):
        from_images(np.zeros((2, 27, 28)))


def test_a_dataset_with_another_vocabulary_is_retokenized(toy_run, tmp_path):
    from duvae_cli.data.store import SPECIALS, Built, SplitData, write_dataset
    from duvae_cli.use.inputs import convert_split

    trained = load_trained(toy_run)
    vocab = [*SPECIALS, "w5", "zebra", "w4"]  # ids differ from the run's
    split = SplitData({"tokens": np.array([4, 5, 6], np.int32), "offsets": np.array([0, 3], np.int64)})
    write_dataset(tmp_path / "o.h5", "other", Built("text", {"train": split, "test": split}, vocab=vocab,
                                                    tokenizer="word"))
    other = load_dataset(tmp_path / "o.h5")
    data = convert_split(other, other.splits["test"], trained.dataset, "o", "o.h5")
    run_vocab = trained.dataset.vocab
    assert data.split.tokens.tolist() == [run_vocab.index("w5"), 3, run_vocab.index("w4")] and data.n_unk == 1


def test_an_export_without_its_data_compares_lengths_with_its_recorded_training_longest(toy_run, tmp_path, duvae,
                                                                                         monkeypatch):
    monkeypatch.chdir(tmp_path)  # no data/ here: the export reads through its own vocabulary
    longest = int(load_trained(toy_run).dataset.splits["train"].lengths.max())
    assert duvae("export", toy_run, tmp_path / "exp", "-q").code == 0
    block = json.loads((tmp_path / "exp" / "config.json").read_text())["duvae_export"]
    assert block["longest_train_sentence"] == longest
    (tmp_path / "long.txt").write_text(" ".join(["w4"] * (longest + 1)) + "\n")
    result = duvae("encode", tmp_path / "exp", tmp_path / "long.txt", "--out", tmp_path / "l.npy", "-q")
    assert result.code == 0, result.stderr
    assert f"1 longer than the longest training sentence ({longest} tokens; longest here {longest + 1})" \
        in result.stderr
