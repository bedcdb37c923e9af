"""Vocabulary semantics of reference-spec §1.1: specials at 0..3, train-only, OOV -> <unk>."""

from __future__ import annotations

import pytest

from duvae_cli.data.store import SPECIALS, UNK_ID
from duvae_cli.data.vocab import WordTokenizer, build_word_vocab, read_vocab_file
from duvae_cli.errors import DuvaeError


def test_first_appearance_order_without_a_cut():
    assert build_word_vocab(["b a b", "c a"]) == [*SPECIALS, "b", "a", "c"]


def test_cut_orders_by_frequency_then_first_appearance():
    vocab = build_word_vocab(["d c c b b b a a a"], vocab_size=7)
    assert vocab == [*SPECIALS, "b", "a", "c"]


def test_unk_aliases_are_never_words_and_encode_as_unk():
    vocab = build_word_vocab(["x _UNK y"], unk_aliases=("_UNK",))
    assert vocab == [*SPECIALS, "x", "y"]
    assert WordTokenizer(vocab, ("_UNK",)).encode("x _UNK z") == [4, UNK_ID, UNK_ID]


def test_an_imposed_vocabulary_listing_the_alias_keeps_it():
    vocab = [*SPECIALS, "_UNK"]
    assert WordTokenizer(vocab, ("_UNK",)).encode("_UNK") == [4]


def test_vocab_file_ids_are_stripped_line_indexes(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("<pad>\n<s>\n</s>\n<unk>\n  word \nother\n")
    assert read_vocab_file(path) == [*SPECIALS, "word", "other"]


@pytest.mark.parametrize("lines, where", [
    (["<s>", "<pad>", "</s>", "<unk>", "a"], "first four lines"),
    (["<pad>", "<s>", "</s>", "a"], "first four lines"),  # no <unk>
    ([*SPECIALS, "a", "", "b"], "line 6"),
    ([*SPECIALS, "a", "a"], "line 6"),
    ([*SPECIALS, "a 12"], "line 5"),
])
def test_bad_vocab_files_are_named_errors(tmp_path, lines, where):
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DuvaeError) as err:
        read_vocab_file(path)
    assert str(path) in str(err.value) and where in str(err.value)
