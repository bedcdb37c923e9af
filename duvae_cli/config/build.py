"""What a config builds: the VAE (`build_model`, the networks by data kind) and the runtime it trains
under (`decide_runtime`: `--device` and `--precision`, with `auto` read from the methods' measured
bf16 parity)."""

from __future__ import annotations

import torch

from duvae_cli import runtime
from duvae_cli.config.resolve import TrainConfig, regularizer_name
from duvae_cli.errors import DuvaeError, UsageError
from duvae_cli.methods import bf16_parity, build_flow, build_regularizer, data_problem
from duvae_cli.models import VAE
from duvae_cli.models.images import build_image_networks
from duvae_cli.models.text import LSTMDecoder, LSTMEncoder


def decide_runtime(config: TrainConfig, data_kind: str) -> runtime.Runtime:
    """The runtime of a training run: its device and precision, `auto` resolved for this model and
    data (the methods' `capabilities.bf16`). A model whose methods do not run on this kind of data is
    a usage error here, before anything is written."""
    _check_data_kind(config, data_kind)
    parity = bf16_parity(config.model, config.flow, config.strategy, data_kind)
    return runtime.decide(config.device, config.precision, parity)


def build_model(config: TrainConfig, dataset) -> VAE:
    """LSTM encoder and decoder for a text dataset, ResNet + PixelCNN for an image dataset; the decoder
    is the regularizer's own where it has one (`Regularizer.decoder_for`)."""
    kind = getattr(dataset, "kind", "text")
    if kind != "image" and config.size != "paper":
        raise UsageError(f"--size {config.size}: sizes other than paper exist for image datasets only")
    _check_data_kind(config, kind)  # also for a library caller that decided no runtime
    try:
        if kind == "image":
            return build_image_model(config)
        return build_text_model(config, len(dataset.vocab))
    except RuntimeError as exc:  # torch.OutOfMemoryError is one; the CPU allocator raises a plain one
        if not isinstance(exc, torch.OutOfMemoryError) and "alloc" not in str(exc):
            raise
        sizes = f"embed_dim {config.embed_dim}, hidden_dim {config.hidden_dim}, latent_dim {config.latent_dim}"
        raise DuvaeError(f"the model does not fit in memory ({sizes}; {str(exc).splitlines()[0][:80]})") from None


def _check_data_kind(config: TrainConfig, data_kind: str) -> None:
    problem = data_problem(config.model, config.flow, config.strategy, data_kind)
    if problem:
        raise UsageError(problem)


def build_image_model(config: TrainConfig) -> VAE:
    regularizer = _regularizer(config)
    flow = _flow(config)
    # every image encoder gets the reference's init, BN-style ones included (enc_resnet_v2.py, enc_flow.py)
    encoder, decoder = build_image_networks(config.size, config.latent_dim, "reference",
                                            context_dim=flow.context_dim if flow is not None else 0)
    own = regularizer.decoder_for(config, "image", 0)  # a method's own decoder (LIDVAE's injective one)
    return VAE(encoder, decoder if own is None else own, regularizer, flow)


def _regularizer(config: TrainConfig):
    """The model's regularizer, given the config's values of the options its constructor takes."""
    values = {k: v for k, v in config.to_dict().items() if k != "latent_dim"}
    return build_regularizer(regularizer_name(config.model), config.latent_dim, **values)


def _flow(config: TrainConfig):
    """The config's flow (None for "none"), given the config's values of its constructor's options."""
    values = {k: v for k, v in config.to_dict().items() if k != "latent_dim"}
    return build_flow(config.flow, config.latent_dim, **values)


def build_text_model(config: TrainConfig, vocab_size: int) -> VAE:
    regularizer = _regularizer(config)
    flow = _flow(config)
    # as the reference code: IAF encoders (enc_flow.py) U(-0.01, 0.01) with LSTM biases 0; BN-style ones
    # PyTorch's defaults; the others U(-0.01, 0.01) throughout
    init = "flow" if flow is not None else "default" if regularizer.uses_batch_norm else "reference"
    encoder = LSTMEncoder(vocab_size, config.embed_dim, config.hidden_dim, config.latent_dim, init=init,
                          context_dim=flow.context_dim if flow is not None else 0)
    decoder = regularizer.decoder_for(config, "text", vocab_size)  # a method's own decoder, or None
    if decoder is None:
        decoder = LSTMDecoder(vocab_size, config.embed_dim, config.hidden_dim, config.latent_dim,
                              config.dropout_in, config.dropout_out)
    return VAE(encoder, decoder, regularizer, flow)
