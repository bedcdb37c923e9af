"""The VAE assembles the loss in one place: loss = mean(rec + kl_weight * kl_term), rec = -log p(x|z)
at the sampled z. Parametrized over every registered regularizer."""

import pytest
import torch

from duvae_cli.models import VAE
from duvae_cli.methods import REGULARIZERS, build_regularizer
from duvae_cli.models.gaussian import kl_standard_normal, sample
from duvae_cli.models.text import LSTMDecoder, LSTMEncoder, TextBatch



VOCAB, LATENT = 11, 4
NAMES = sorted(n for n, cls in REGULARIZERS.items() if "text" in cls.capabilities.data)  # text-capable


def tiny_vae(name: str, seed: int = 0) -> VAE:
    torch.manual_seed(seed)
    regularizer = build_regularizer(name, LATENT)
    init = "default" if regularizer.uses_batch_norm else "reference"
    encoder = LSTMEncoder(VOCAB, 6, 8, LATENT, init=init)
    decoder = LSTMDecoder(VOCAB, 6, 8, LATENT)
    return VAE(encoder, decoder, regularizer)


def tiny_batch(seed: int = 0, size: int = 12, vocab: int = VOCAB) -> TextBatch:
    """`size` random sentences of 3-8 tokens over word ids 3..vocab-1: <s> ... </s>, padded with 0."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, 9, (size,), generator=g)
    tokens = torch.randint(3, vocab, (size, int(lengths.max())), generator=g)
    tokens[:, 0] = 1
    tokens[torch.arange(size), lengths - 1] = 2
    tokens[torch.arange(tokens.shape[1]) >= lengths.unsqueeze(1)] = 0
    return TextBatch(tokens, lengths)


@pytest.mark.parametrize("kl_weight", [0.3, 1.0])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("name", NAMES)
def test_loss_is_assembled_from_rec_and_weighted_kl_term(name, training, kl_weight):
    model = tiny_vae(name).train(training)
    batch = tiny_batch()
    model.train().posterior(batch)  # BN running statistics away from their init
    model.train(training)

    torch.manual_seed(7)
    out = model(batch, kl_weight)
    torch.testing.assert_close(out.loss, (out.rec + kl_weight * out.kl_term).mean())
    torch.testing.assert_close(out.kl, kl_standard_normal(out.mean, out.logvar).sum(-1))
    torch.testing.assert_close(out.kl_term, model.regularizer.kl_term(
        kl_standard_normal(out.mean, out.logvar), out.mean, out.logvar))

    # the same seed replays posterior (incl. DU's dropout mask), the draw of z and decoder dropout
    torch.manual_seed(7)
    mean, logvar = model.posterior(batch, kl_weight)
    torch.testing.assert_close(mean, out.mean)
    torch.testing.assert_close(logvar, out.logvar)
    z = sample(mean, logvar)
    torch.testing.assert_close(out.rec, -model.decoder.log_prob(batch, z))
    assert (out.rec > 0).all()

    # and rec is for *that* z, not the mean: another draw gives another value
    other = -model.decoder.log_prob(batch, sample(mean, logvar))
    assert not torch.allclose(other, out.rec)


@pytest.mark.parametrize("name", NAMES)
def test_every_regularizer_trains(name):
    """Finite loss and finite gradients reaching the encoder and the decoder, and one SGD step with
    after_step() lowers nothing to NaN."""
    model = tiny_vae(name).train()
    batch = tiny_batch(1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for step in range(3):
        out = model(batch, kl_weight=1.0)
        assert torch.isfinite(out.loss)
        optimizer.zero_grad()
        out.loss.backward()
        for part in (model.encoder, model.decoder):
            grads = [p.grad for p in part.parameters() if p.requires_grad]
            assert all(g is not None and torch.isfinite(g).all() for g in grads)
            assert sum(g.abs().sum() for g in grads) > 0
        optimizer.step()
        model.after_step()
    model.eval()
    assert torch.isfinite(model(batch).loss)


@pytest.mark.parametrize("name", ["bn", "du"])
def test_after_step_keeps_the_scale_contract_through_the_model(name):
    gamma = build_regularizer(name, LATENT).bn.gamma
    model = tiny_vae(name).train()
    batch = tiny_batch(2)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    push = torch.linspace(-3, 3, LATENT)  # rewards some dimensions' spread, penalises others'
    for _ in range(5):
        out = model(batch, kl_weight=1.0)
        loss = out.loss + (push * out.mean.pow(2)).sum(-1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        model.after_step()
        weight = model.regularizer.bn.bn.weight.detach()
        if name == "bn":
            assert torch.equal(weight, torch.full((LATENT,), gamma))
        else:
            assert abs(weight.pow(2).mean().sqrt().item() - gamma) < 1e-6
    if name == "du":
        assert weight.std() > 1e-3, "the loss should have moved the scales apart"
