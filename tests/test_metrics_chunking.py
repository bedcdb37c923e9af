"""The same numbers whatever the batching: chunks, batch sizes, the fast scorer and the noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from duvae_cli.errors import DuvaeError
from duvae_cli.data.batching import TextBatches
from duvae_cli.metrics import EvalOptions, score_examples
from duvae_cli.metrics.iw import example_noise, plan_chunks
from duvae_cli.metrics.scoring import GenericScorer, LSTMScorer, make_scorer
from duvae_cli.models.text import TextBatch
from duvae_cli.config.build import build_text_model
from duvae_cli.config.resolve import TrainConfig

VOCAB = 40



def small_model(model: str = "du", seed: int = 0):
    torch.manual_seed(seed)
    config = TrainConfig(model=model, embed_dim=8, hidden_dim=12, latent_dim=3)
    vae = build_text_model(config, VOCAB)
    with torch.no_grad():
        for p in vae.decoder.parameters():
            p.normal_(0.0, 0.5)
    return vae.eval()


def split(n: int = 37, seed: int = 0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 12, n)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    tokens = rng.integers(4, VOCAB, offsets[-1]).astype(np.int32)
    return type("Split", (), {"tokens": tokens, "offsets": offsets})


def test_lstm_scorer_is_the_decoder_log_prob():
    vae = small_model()
    examples = TextBatches(split())
    batch = examples.batch(np.arange(len(examples)))  # mixed lengths, padded
    z = torch.randn(len(batch), 5, 3)
    with torch.inference_mode():
        fast = make_scorer(vae.decoder)
        assert isinstance(fast, LSTMScorer)
        torch.testing.assert_close(fast(batch, z), vae.decoder.log_prob(batch, z), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(LSTMScorer(vae.decoder, block_rows=7)(batch, z), fast(batch, z),
                                   rtol=1e-6, atol=1e-6)


def test_a_decoder_in_training_mode_is_scored_by_its_own_log_prob():
    vae = small_model()
    vae.decoder.train()
    assert isinstance(make_scorer(vae.decoder), GenericScorer)


@pytest.mark.parametrize("model", ["du", "vae"])
def test_batch_size_and_chunking_do_not_change_per_example_values(model):
    vae, examples = small_model(model), TextBatches(split())
    base = score_examples(vae, examples, EvalOptions(iw_samples=24, batch_size=64))
    variants = [
        EvalOptions(iw_samples=24, batch_size=1),
        EvalOptions(iw_samples=24, batch_size=5, max_rows=50),  # 2 examples per chunk
        EvalOptions(iw_samples=24, batch_size=9, max_rows=7),  # each example split into 4 chunks
        EvalOptions(iw_samples=24, batch_size=16, memory_budget=60_000),  # the budget decides
    ]
    for options in variants:
        other = score_examples(vae, examples, options)
        for name, values in base.items():
            np.testing.assert_allclose(other[name], values, rtol=1e-6, atol=1e-6, err_msg=name)


def test_noise_is_a_function_of_seed_and_example_only():
    a = example_noise(5, 17, 100, 4)
    assert torch.equal(a, example_noise(5, 17, 100, 4))
    assert not torch.equal(a, example_noise(5, 18, 100, 4))
    assert not torch.equal(a, example_noise(6, 17, 100, 4))
    # standard normal: 400 draws, mean and variance within 4 standard errors
    assert abs(float(a.mean())) < 4 / 20 and abs(float(a.var()) - 1) < 4 * (2 / 400) ** 0.5


@pytest.mark.parametrize("n_examples, n_samples, max_rows", [(5, 8, 100), (5, 8, 16), (3, 10, 4), (4, 7, 7)])
def test_chunks_cover_every_example_and_sample_once(n_examples, n_samples, max_rows):
    seen = np.zeros((n_examples, n_samples), dtype=int)
    for chunk in plan_chunks(n_examples, n_samples, lambda rows, ex: True, max_rows):
        seen[chunk.examples, chunk.samples] += 1
        rows = (chunk.examples.stop - chunk.examples.start) * (chunk.samples.stop - chunk.samples.start)
        assert rows <= max_rows
    assert (seen == 1).all()


def test_chunks_respect_the_memory_predicate_and_fail_in_words():
    chunks = plan_chunks(4, 10, lambda rows, ex: rows <= 6, max_rows=1000)
    assert max(c.samples.stop - c.samples.start for c in chunks) == 6
    with pytest.raises(DuvaeError, match="--memory-budget"):
        plan_chunks(4, 10, lambda rows, ex: False, max_rows=1000)
    vae, examples = small_model(), TextBatches(split())
    with pytest.raises(DuvaeError, match="--memory-budget"):
        score_examples(vae, examples, EvalOptions(iw_samples=8, memory_budget=1000))


def test_memory_estimate_grows_with_rows_length_and_vocabulary():
    vae = small_model()
    scorer = make_scorer(vae.decoder)
    short = TextBatch(torch.ones(2, 4, dtype=torch.long), torch.tensor([4, 3]))
    long = TextBatch(torch.ones(2, 30, dtype=torch.long), torch.tensor([30, 3]))
    assert scorer.chunk_bytes(short, 100, 2) < scorer.chunk_bytes(short, 200, 2)
    assert scorer.chunk_bytes(short, 100, 2) < scorer.chunk_bytes(long, 100, 2)
    generic = GenericScorer(vae.decoder)
    assert generic.chunk_bytes(long, 10, 1) > 10 * 29 * 3 * VOCAB * 4  # logits dominate
