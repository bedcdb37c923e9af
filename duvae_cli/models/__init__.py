"""Model library: encoders, decoders, the posterior regularizer's interface and the VAE that composes
them. The regularizers, flows and strategies themselves are methods (duvae_cli/methods/)."""

from duvae_cli.models.vae import VAE, VAEOutput

__all__ = ["VAE", "VAEOutput"]
