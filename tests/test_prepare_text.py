"""Every text layout `duvae prepare` reads, from small files written into tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from duvae_cli.data import load_dataset
from duvae_cli.prepare import PrepareOptions, prepare_dataset
from duvae_cli.data.store import SPECIALS, UNK_ID


def write(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def sentences(split, vocab) -> list[str]:
    return [" ".join(vocab[i] for i in split.sentence(k)) for k in range(len(split))]


def prepare(name: str, tmp_path: Path, **kwargs):
    summary = prepare_dataset(name, PrepareOptions(out=tmp_path / "out", **kwargs))
    return summary, load_dataset(summary.path)


def test_text_explicit_splits_vocab_from_train_in_first_appearance_order(tmp_path):
    train = write(tmp_path / "a.txt", ["the cat sat", "", "the dog  ran"])
    valid = write(tmp_path / "b.txt", ["the bird sat"])
    test = write(tmp_path / "c.txt", ["a cat"])
    summary, ds = prepare("text", tmp_path, train=train, valid=valid, test=test)
    assert ds.vocab == [*SPECIALS, "the", "cat", "sat", "dog", "ran"]
    assert sentences(ds.splits["train"], ds.vocab) == ["the cat sat", "the dog ran"]
    assert sentences(ds.splits["valid"], ds.vocab) == ["the <unk> sat"]  # OOV -> <unk>, vocab is train-only
    assert list(ds.splits["test"].sentence(0)) == [UNK_ID, 5]
    assert ds.splits["train"].labels is None and ds.num_labels == 0
    assert ds.splits["train"].tokens.dtype == np.int32 and ds.splits["train"].offsets.dtype == np.int64
    assert list(ds.splits["train"].lengths) == [3, 3]
    train_row = summary.to_dict()["splits"][0]
    assert train_row["dropped"] == {"empty": 1, "too long": 0} and train_row["examples"] == 2
    assert ds.attrs["name"] == "text" and ds.tokenizer == "word"


def test_text_labelled_file_is_detected_and_reported(tmp_path):
    train = write(tmp_path / "train.tsv", ["1\tgood food", "0\tbad service", "2\tok"])
    summary, ds = prepare("text", tmp_path, train=train, valid=train, as_name="mine")
    assert list(ds.splits["train"].labels) == [1, 0, 2] and ds.num_labels == 3
    assert ds.attrs["name"] == "mine" and summary.path == tmp_path / "out" / "mine" / "dataset.h5"
    assert any("train.tsv: LABEL<TAB>sentence lines" in note for note in summary.notes)
    assert "no test split written" in " ".join(summary.notes) and "test" not in ds.splits


def test_one_file_is_carved_by_seeded_fractions_keeping_file_order(tmp_path):
    lines = [f"{i % 3}\tw{i} x" for i in range(100)]
    data = write(tmp_path / "all.txt", lines)
    _, ds = prepare("text", tmp_path, train=data, split="0.7,0.2,0.1", seed=5)
    sizes = {k: len(v) for k, v in ds.splits.items()}
    assert sizes == {"train": 70, "valid": 20, "test": 10}
    first_words = {k: [ds.vocab[v.sentence(i)[0]] for i in range(len(v))] for k, v in ds.splits.items()}
    train_ids = [int(w[1:]) for w in first_words["train"]]
    assert train_ids == sorted(train_ids)  # each part keeps file order
    held_out = [w for k in ("valid", "test") for w in first_words[k]]
    assert set(held_out) == {"<unk>"}  # words of valid/test lines were never in train
    _, again = prepare("text", tmp_path / "again", train=data, split="0.7,0.2,0.1", seed=5)
    assert np.array_equal(again.splits["valid"].labels, ds.splits["valid"].labels)


def test_max_length_drops_are_counted_per_split(tmp_path):
    train = write(tmp_path / "t.txt", ["a b c d", "a b", "a"])
    summary, ds = prepare("text", tmp_path, train=train, valid=train, max_length=2)
    assert len(ds.splits["train"]) == 2
    assert summary.to_dict()["splits"][0]["dropped"]["too long"] == 1


def test_vocab_size_and_min_freq_cut_by_frequency(tmp_path):
    train = write(tmp_path / "t.txt", ["c b a", "b a", "a d d"])
    _, ds = prepare("text", tmp_path, train=train, valid=train, vocab_size=6)
    assert ds.vocab == [*SPECIALS, "a", "b"]  # counts a3 b2 d2 c1: ties keep first appearance
    _, ds = prepare("text", tmp_path / "m", train=train, valid=train, min_freq=2)
    assert ds.vocab == [*SPECIALS, "a", "b", "d"]


def test_imposed_vocab_ids_are_line_indexes(tmp_path):
    vocab = write(tmp_path / "v.txt", [*SPECIALS, "zebra", "apple"])
    train = write(tmp_path / "t.txt", ["apple zebra pear"])
    _, ds = prepare("text", tmp_path, train=train, valid=train, vocab=vocab)
    assert ds.vocab == [*SPECIALS, "zebra", "apple"]
    assert list(ds.splits["train"].sentence(0)) == [5, 4, UNK_ID]


def test_reserved_strings_in_text_never_become_control_ids(tmp_path):
    train = write(tmp_path / "t.txt", ["a <s> b </s> <pad> <unk>"])
    _, ds = prepare("text", tmp_path, train=train, valid=train)
    assert ds.vocab == [*SPECIALS, "a", "b"]
    assert list(ds.splits["train"].sentence(0)) == [4, UNK_ID, 5, UNK_ID, UNK_ID, UNK_ID]


def test_ptb_files_own_unk_maps_to_ours_and_missing_test_is_noted(tmp_path):
    src = tmp_path / "ptb"
    write(src / "ptb.train.txt", [" the <unk> fell N points ", " the market rose "])
    write(src / "ptb.valid.txt", [" the <unk> rose "])
    summary, ds = prepare("ptb", tmp_path, source=str(src))
    assert "<unk>" not in ds.vocab[4:] and ds.vocab[:4] == list(SPECIALS)
    assert ds.splits["train"].sentence(0)[1] == UNK_ID
    assert set(ds.splits) == {"train", "valid"}
    assert "no test file: no test split written" in summary.notes


@pytest.mark.parametrize("layout", ["yang", "sa-vae"])
def test_yang_and_sa_vae_layouts_with_official_vocab(tmp_path, layout):
    src = tmp_path / "yelp"
    names = {"yang": ("yelp.train.txt", "yelp.valid.txt", "yelp.test.txt"),
             "sa-vae": ("train.txt", "val.txt", "test.txt")}[layout]
    for name in names:
        write(src / name, ["4\tgreat tacos", "0\tcold _UNK fries"])
    write(src / "vocab.txt", [*SPECIALS, "tacos", "great", "fries", "cold"])
    summary, ds = prepare("yelp", tmp_path, source=str(src))
    assert ds.vocab == [*SPECIALS, "tacos", "great", "fries", "cold"]
    assert sentences(ds.splits["test"], ds.vocab) == ["great tacos", "cold <unk> fries"]
    assert ds.num_labels == 5 and list(ds.splits["valid"].labels) == [4, 0]
    assert "vocabulary imposed from the corpus's vocab.txt" in summary.notes


def test_yahoo_val_only_is_carved(tmp_path):
    write(tmp_path / "yahoo" / "val.txt", [f"doc {i} text" for i in range(50)])
    summary, ds = prepare("yahoo", tmp_path, source=str(tmp_path / "yahoo"))
    assert [len(ds.splits[s]) for s in ("train", "valid", "test")] == [40, 5, 5]
    assert any("carved" in note and "val.txt" in note for note in summary.notes)


def test_short_yelp_subsets_and_largest_as_train(tmp_path):
    src = tmp_path / "sy"
    write(src / "vocab.txt", [*SPECIALS, "good", "bad"])
    write(src / "short_yelp.valid.txt", ["1\tgood", "0\tbad"])
    write(src / "short_yelp.test.txt", ["1\tgood good"])
    write(src / "short_yelp.train.2.txt", ["1\tgood", "0\tbad bad"])
    write(src / "short_yelp.train.3.txt", ["1\tgood", "0\tbad", "0\tvery bad"])
    summary, ds = prepare("short-yelp", tmp_path, source=str(src))
    assert sorted(ds.subsets) == ["2", "3"]
    assert len(ds.splits["train"]) == 3 and np.array_equal(ds.splits["train"].tokens, ds.subsets["3"].tokens)
    assert list(ds.subsets["2"].labels) == [1, 0]
    assert "no full train file: the largest subset (3) is the train split" in summary.notes
    assert [r[0] for r in summary.rows()] == ["train", "valid", "test", "subsets/2", "subsets/3"]


def test_shen_suffix_files_label_from_suffix(tmp_path):
    src = tmp_path / "shen"
    for split in ("train", "dev", "test"):
        write(src / f"sentiment.{split}.0", [f"bad {split}", "awful"])
        write(src / f"sentiment.{split}.1", [f"good {split}"])
    _, ds = prepare("yelp-sentiment", tmp_path, source=str(src))
    assert list(ds.splits["valid"].labels) == [0, 0, 1]  # dev is our valid; .0 then .1
    assert ds.num_labels == 2 and set(ds.splits) == {"train", "valid", "test"}


def test_sources_are_relative_names_with_sha256(tmp_path):
    train = write(tmp_path / "deep" / "t.txt", ["a b"])
    _, ds = prepare("text", tmp_path, train=train, valid=train)
    sources = json.loads(ds.attrs["sources"])
    assert sources == [{"file": "t.txt", "sha256": sources[0]["sha256"]}] and len(sources[0]["sha256"]) == 64
    assert str(tmp_path) not in json.dumps(ds.attrs)


def test_sentencepiece_is_deterministic_and_keeps_special_ids(tmp_path):
    lines = [f"the quick brown fox {w} over the lazy dog" for w in ("jumps", "leaps", "hops", "runs")] * 30
    train = write(tmp_path / "t.txt", lines)
    _, first = prepare("text", tmp_path / "1", train=train, valid=train, tokenizer="sentencepiece", vocab_size=60)
    _, second = prepare("text", tmp_path / "2", train=train, valid=train, tokenizer="sentencepiece", vocab_size=60)
    assert first.sentencepiece_model == second.sentencepiece_model and first.sha256 == second.sha256
    assert first.vocab[:4] == list(SPECIALS) and first.tokenizer == "sentencepiece"
    assert first.decode(first.splits["train"].sentence(0)) == lines[0]
    assert first.splits["train"].tokens.min() >= 3  # never pad/bos/eos inside a sentence


def test_sentencepiece_reads_the_corpus_unk_token_as_one_unk(tmp_path):
    src = tmp_path / "ptb"
    write(src / "ptb.train.txt", [" the <unk> fell N points ", " the market rose "] * 20)
    write(src / "ptb.valid.txt", [" the <unk> rose <s> "])
    _, ds = prepare("ptb", tmp_path, source=str(src), tokenizer="sentencepiece", vocab_size=40)
    ids = list(ds.splits["valid"].sentence(0))
    assert ids.count(UNK_ID) == 2 and ds.decode([i for i in ids if i != UNK_ID]) == "the rose"
    assert not any("<" in piece for piece in ds.vocab[4:])
