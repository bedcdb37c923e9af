"""Decoding for `--kind samples`: beam search is exact when the beam covers every sentence, greedy
follows the argmax, sampling is reproducible."""

from __future__ import annotations

import itertools

import torch

from duvae_cli.data.store import BOS_ID, EOS_ID
from duvae_cli.models.text import LSTMDecoder, TextBatch
from duvae_cli.use.decode import beam_search, greedy, sample

VOCAB, MAX_LENGTH = 7, 3  # ids 3..6 may be produced (<unk> and three words)


def _decoder() -> LSTMDecoder:
    torch.manual_seed(0)
    decoder = LSTMDecoder(VOCAB, 8, 8, 2, dropout_in=0.0, dropout_out=0.0)
    for parameter in decoder.parameters():  # larger weights than the reference init: peaked choices
        torch.nn.init.uniform_(parameter, -1.5, 1.5)
    return decoder.eval()


def _log_prob(decoder, words: tuple[int, ...], z: torch.Tensor) -> float:
    tokens = torch.tensor([[BOS_ID, *words, EOS_ID]])
    with torch.no_grad():
        return float(decoder.log_prob(TextBatch(tokens, torch.tensor([len(words) + 2])), z[None]))


def test_a_beam_covering_every_sentence_finds_the_most_likely_one():
    decoder, z = _decoder(), torch.tensor([0.7, -1.2])
    sentences = [s for n in range(MAX_LENGTH + 1) for s in itertools.product(range(3, VOCAB), repeat=n)]
    best = max(sentences, key=lambda s: _log_prob(decoder, s, z))
    assert tuple(beam_search(decoder, z, width=len(sentences), max_length=MAX_LENGTH)) == best


def test_greedy_takes_the_most_likely_word_at_every_step():
    decoder, z = _decoder(), torch.tensor([[0.3, 0.1]])
    words = greedy(decoder, z, MAX_LENGTH)[0]
    prefix = [BOS_ID]
    for word in [*words, EOS_ID][:MAX_LENGTH]:
        logits, _ = decoder.logits(torch.tensor([prefix]), z)
        allowed = logits[0, -1].clone()
        allowed[[0, BOS_ID]] = -float("inf")
        assert int(allowed.argmax()) == word
        prefix.append(word)


def test_sampling_is_reproducible_with_a_seeded_generator():
    decoder, z = _decoder(), torch.randn(5, 2, generator=torch.Generator().manual_seed(1))
    draw = lambda: sample(decoder, z, MAX_LENGTH, torch.Generator().manual_seed(3))  # noqa: E731
    first = draw()
    assert first == draw()
    assert all(len(s) <= MAX_LENGTH and all(t >= 3 for t in s) for s in first)
