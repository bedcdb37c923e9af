"""Build the VAE a config describes."""

from __future__ import annotations

from duvae_cli.models import VAE, build_regularizer
from duvae_cli.models.text import LSTMDecoder, LSTMEncoder
from duvae_cli.train.config import TrainConfig


def build_text_model(config: TrainConfig, vocab_size: int) -> VAE:
    regularizer = build_regularizer(
        config.model, config.latent_dim, gamma=config.gamma, p=config.p, beta=config.beta,
        fb_lambda=config.fb_lambda, delta=config.delta, alpha_scale=config.alpha_scale,
        dropout_during_warmup=config.dropout_during_warmup, bn_eps=config.bn_eps,
    )
    init = "default" if regularizer.uses_batch_norm else "reference"  # as the reference code
    encoder = LSTMEncoder(vocab_size, config.embed_dim, config.hidden_dim, config.latent_dim, init=init)
    decoder = LSTMDecoder(vocab_size, config.embed_dim, config.hidden_dim, config.latent_dim,
                          config.dropout_in, config.dropout_out)
    return VAE(encoder, decoder, regularizer)
