"""LSTM encoder and decoder: log p(x|z) is a normalised autoregressive likelihood, padding-invariant,
and the same whether z comes one per sentence or K per sentence."""

import itertools

import pytest
import torch

from duvae_cli.models.text import LSTMDecoder, LSTMEncoder, TextBatch



PAD, BOS, EOS = 0, 1, 2
LATENT = 3


def models(vocab_size: int = 9, init: str = "reference", seed: int = 0):
    torch.manual_seed(seed)
    encoder = LSTMEncoder(vocab_size, 5, 7, LATENT, init=init).double().eval()
    decoder = LSTMDecoder(vocab_size, 5, 7, LATENT).double().eval()
    with torch.no_grad():  # the reference init is nearly uniform; make the distributions peaked
        for parameter in decoder.parameters():
            parameter.mul_(40)
    return encoder, decoder


def batch_of(sentences: list[list[int]]) -> TextBatch:
    """`<s> w.. </s>` rows padded with PAD."""
    rows = [[BOS, *words, EOS] for words in sentences]
    return raw_batch(rows)


def raw_batch(rows: list[list[int]]) -> TextBatch:
    width = max(map(len, rows))
    tokens = torch.tensor([row + [PAD] * (width - len(row)) for row in rows])
    return TextBatch(tokens, torch.tensor([len(row) for row in rows]))


SENTENCES = [[3, 4], [5, 6, 7, 8, 3, 3], [8], [4, 4, 4, 5]]


@pytest.mark.parametrize("init", ["reference", "default"])
def test_padding_does_not_change_any_sentence(init):
    encoder, decoder = models(init=init)
    batch = batch_of(SENTENCES)
    z = torch.randn(len(SENTENCES), LATENT, dtype=torch.float64)
    mean, logvar = encoder(batch)
    log_p = decoder.log_prob(batch, z)
    for i, words in enumerate(SENTENCES):
        alone = batch_of([words])
        one_mean, one_logvar = encoder(alone)
        torch.testing.assert_close(one_mean[0], mean[i], rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(one_logvar[0], logvar[i], rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(decoder.log_prob(alone, z[i:i + 1])[0], log_p[i], rtol=1e-9, atol=1e-9)
    # not vacuous: the sentences really differ
    assert mean.std(0).min() > 0 and log_p.std() > 0


def test_padding_tokens_are_never_read():
    """Whatever sits after a sentence's </s> changes nothing (not only the pad id)."""
    encoder, decoder = models()
    batch = batch_of(SENTENCES)
    garbage = batch.tokens.clone()
    positions = torch.arange(garbage.shape[1])
    beyond = positions >= batch.lengths.unsqueeze(1)
    garbage[beyond] = torch.randint(3, 9, (int(beyond.sum()),))
    noisy = TextBatch(garbage, batch.lengths)
    z = torch.randn(len(batch), LATENT, dtype=torch.float64)
    torch.testing.assert_close(encoder(noisy)[0], encoder(batch)[0], rtol=0, atol=0)
    torch.testing.assert_close(decoder.log_prob(noisy, z), decoder.log_prob(batch, z), rtol=0, atol=0)


def test_several_samples_equal_separate_calls():
    _, decoder = models()
    batch = batch_of(SENTENCES)
    K = 5
    z = torch.randn(len(batch), K, LATENT, dtype=torch.float64)
    joint = decoder.log_prob(batch, z)  # (B, K)
    assert joint.shape == (len(batch), K)
    for k in range(K):
        torch.testing.assert_close(joint[:, k], decoder.log_prob(batch, z[:, k]), rtol=1e-9, atol=1e-9)
    assert joint.std(1).min() > 0  # z matters


def test_log_prob_is_the_sum_of_next_token_log_softmax():
    """Step the decoder one token at a time with `logits`: the sum over predicted tokens (every word
    and </s>, never <s>) of log softmax equals log_prob."""
    _, decoder = models()
    batch = batch_of(SENTENCES)
    z = torch.randn(len(batch), LATENT, dtype=torch.float64)
    log_p = decoder.log_prob(batch, z)
    for i, words in enumerate(SENTENCES):
        tokens = [BOS, *words, EOS]
        state, total = None, torch.zeros((), dtype=torch.float64)
        for position in range(len(tokens) - 1):
            step = torch.tensor([[tokens[position]]])
            logits, state = decoder.logits(step, z[i:i + 1], state)
            total = total + torch.log_softmax(logits[0, -1], -1)[tokens[position + 1]]
        torch.testing.assert_close(log_p[i], total, rtol=1e-9, atol=1e-9)
    assert batch.n_predicted.tolist() == [len(words) + 1 for words in SENTENCES]


@pytest.mark.parametrize("length", [1, 2, 3])
def test_decoder_is_a_normalised_distribution(length):
    """V = 3: summing p(x|z) over all V^length continuations of <s> gives exactly 1. log_prob scores
    whatever token ends a row, so every sequence of the given length is in the sum once."""
    vocab = 3
    _, decoder = models(vocab_size=vocab, seed=length)
    rows = [[BOS, *tail] for tail in itertools.product(range(vocab), repeat=length)]
    batch = raw_batch(rows)
    z = torch.randn(1, LATENT, dtype=torch.float64).expand(len(rows), -1)
    log_p = decoder.log_prob(batch, z)
    assert (log_p < 0).all()
    torch.testing.assert_close(torch.logsumexp(log_p, 0), torch.zeros((), dtype=torch.float64),
                               rtol=0, atol=1e-12)


def test_dropout_is_active_only_in_training():
    _, decoder = models()
    batch = batch_of(SENTENCES)
    z = torch.randn(len(batch), LATENT, dtype=torch.float64)
    assert torch.equal(decoder.log_prob(batch, z), decoder.log_prob(batch, z))
    decoder.train()
    torch.manual_seed(0)
    first = decoder.log_prob(batch, z)
    assert not torch.equal(first, decoder.log_prob(batch, z))


def test_unknown_init_is_refused():
    with pytest.raises(ValueError, match="reference"):
        LSTMEncoder(5, 4, 4, 2, init="xavier")
