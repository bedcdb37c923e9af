"""duvae: variational autoencoders that resist posterior collapse (DU-VAE and its baselines)."""

__version__ = "0.1.0"
