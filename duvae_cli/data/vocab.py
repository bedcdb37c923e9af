"""Vocabularies and tokenizers. Ids 0..3 are always <pad>, <s>, </s>, <unk> (reference-spec §1.1).

Word vocabularies are built from the train split only: every word in order of first appearance (the
reference's rule) or, when --vocab-size or --min-freq cut it, by falling frequency with ties in order
of first appearance. Words outside the vocabulary become <unk>; so do the strings "<pad>", "<s>" and
"</s>" when they appear inside a sentence (they must never be read as control ids), and a corpus's
own unknown-word token (PTB's "<unk>", Yahoo's "_UNK") unless an imposed vocabulary lists it.
"""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

from duvae_cli.data.store import SPECIALS, UNK_ID
from duvae_cli.data.text import SourceFile, decode_lines
from duvae_cli.errors import DuvaeError


class WordTokenizer:
    name = "word"
    model: bytes | None = None

    def __init__(self, vocab: Sequence[str], unk_aliases: Iterable[str] = ()):
        self.vocab = list(vocab)
        self.lookup = {word: i for i, word in enumerate(self.vocab)}
        for special in SPECIALS[:3]:
            self.lookup.pop(special, None)
        for alias in unk_aliases:
            self.lookup.setdefault(alias, UNK_ID)

    def encode(self, text: str) -> list[int]:
        get = self.lookup.get
        return [get(word, UNK_ID) for word in text.split()]

    def unknown(self, text: str) -> list[str]:
        """The words of `text` read as <unk> (outside the vocabulary, or reserved)."""
        get = self.lookup.get
        return [word for word in text.split() if get(word, UNK_ID) == UNK_ID]


def build_word_vocab(train_texts: Iterable[str], vocab_size: int | None = None, min_freq: int = 1,
                     unk_aliases: Iterable[str] = ()) -> list[str]:
    """Specials, then the train words (see the module docstring for the order and the cut)."""
    counts = Counter()
    for text in train_texts:
        counts.update(text.split())  # Counter keeps first-insertion order: first appearance
    for token in (*SPECIALS, *unk_aliases):
        counts.pop(token, None)
    words = list(counts)
    if vocab_size is not None or min_freq > 1:
        order = {word: i for i, word in enumerate(words)}
        words = sorted((w for w in words if counts[w] >= min_freq), key=lambda w: (-counts[w], order[w]))
        if vocab_size is not None:
            words = words[: max(vocab_size - len(SPECIALS), 0)]
    return [*SPECIALS, *words]


def read_vocab_file(path: Path, shown: str | None = None) -> list[str]:
    """An imposed vocabulary: id = line index of the stripped line; ids 0..3 must be the specials."""
    shown = shown or str(path)
    lines = decode_lines(SourceFile(path, display=shown))
    while lines and not lines[-1].strip():  # trailing blank lines are not entries
        lines.pop()
    vocab, seen = [], {}
    for number, line in enumerate(lines, start=1):
        word = line.strip()
        if not word or len(word.split()) != 1:
            raise DuvaeError(f"{shown}: line {number}: {'empty entry' if not word else repr(word)}; "
                             "expected one token per line")
        if word in seen:
            raise DuvaeError(f"{shown}: line {number}: {word!r} repeats line {seen[word]}")
        seen[word] = number
        vocab.append(word)
    if tuple(vocab[:4]) != SPECIALS:
        raise DuvaeError(f"{shown}: the first four lines must be {' '.join(SPECIALS)} "
                         f"(found {' '.join(vocab[:4]) or 'nothing'})")
    return vocab


class SentencePieceTokenizer:
    """A unigram SentencePiece model trained in memory on the train split with fixed settings.

    Reserved words (the corpus's unknown-word token, "<pad>", "<s>", "</s>") are kept out of
    training and encode as one <unk> id, as with the word tokenizer; SentencePiece itself would
    spell PTB's "<unk>" as pieces and unknown characters."""

    name = "sentencepiece"

    def __init__(self, model: bytes, reserved: Iterable[str] = ()):
        import sentencepiece

        self.model = model
        self.processor = sentencepiece.SentencePieceProcessor(model_proto=model)
        self.vocab = [self.processor.id_to_piece(i) for i in range(self.processor.get_piece_size())]
        self.reserved = {*SPECIALS, *reserved}

    def encode(self, text: str) -> list[int]:
        words = text.split()
        if self.reserved.isdisjoint(words):
            return self.processor.encode(text)
        ids: list[int] = []
        run: list[str] = []  # words between reserved ones, encoded together
        for word in [*words, None]:
            if word is None or word in self.reserved:
                ids.extend(self.processor.encode(" ".join(run)) if run else [])
                ids.extend([UNK_ID] if word is not None else [])
                run = []
            else:
                run.append(word)
        return ids

    def unknown(self, text: str) -> list[str]:
        """The words of `text` with an <unk> piece (a character the model never saw, or a reserved word)."""
        return [word for word in text.split() if UNK_ID in self.encode(word)]

    @classmethod
    def train(cls, train_texts: Sequence[str], vocab_size: int,
              unk_aliases: Iterable[str] = ()) -> "SentencePieceTokenizer":
        import sentencepiece

        reserved = {*SPECIALS, *unk_aliases}
        texts = (" ".join(w for w in t.split() if w not in reserved) for t in train_texts)
        model = io.BytesIO()
        try:
            sentencepiece.SentencePieceTrainer.train(
                sentence_iterator=texts, model_writer=model, vocab_size=vocab_size,
                model_type="unigram", character_coverage=1.0, hard_vocab_limit=False,
                pad_id=0, bos_id=1, eos_id=2, unk_id=3,
                pad_piece=SPECIALS[0], bos_piece=SPECIALS[1], eos_piece=SPECIALS[2], unk_piece=SPECIALS[3],
                # determinism: one thread, every sentence, in file order
                num_threads=1, input_sentence_size=0, shuffle_input_sentence=False,
                minloglevel=2,
            )
        except RuntimeError as exc:
            raise DuvaeError(f"sentencepiece training failed: {exc}".replace("\n", " ")) from None
        return cls(model.getvalue(), unk_aliases)
