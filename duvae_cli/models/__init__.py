"""Model library: encoders, decoders, posterior regularizers and the VAE that composes them."""

from duvae_cli.models import du  # noqa: F401  (registers "du")
from duvae_cli.models import mae  # noqa: F401  (registers "mae")
from duvae_cli.models.flow import FLOWS, build_flow
from duvae_cli.models.regularizers import REGULARIZERS, build_regularizer
from duvae_cli.models.vae import VAE, VAEOutput

__all__ = ["FLOWS", "REGULARIZERS", "VAE", "VAEOutput", "build_flow", "build_regularizer"]
