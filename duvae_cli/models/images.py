"""Image networks by size: the paper's ResNet encoder + PixelCNN decoder, and a small one for CPUs.

`--size paper` is reference-spec §2.4-2.5 exactly. `--size small` keeps every structural piece
(3 stride-2 residual blocks, mask A then mask-B residual blocks with skips, 4 latent maps) with fewer
channels and blocks, so an epoch of Omniglot trains on two CPU cores in minutes (docs/training.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from duvae_cli.models.pixelcnn import PAPER_KERNELS, PixelCNNDecoder
from duvae_cli.models.resnet import ResNetEncoder


@dataclass(frozen=True)
class ImageSize:
    encoder_channels: tuple[int, ...]  # one stride-2 residual block each
    encoder_hidden: int  # width of the 4x4 conv before the Linear to (mean, logvar)
    decoder_channels: int  # C of the masked residual blocks (their bottleneck is C / 2)
    decoder_kernels: tuple[int, ...]  # one main block each; len - 2 skip blocks
    latent_maps: int = 4  # z -> this many 28x28 maps beside the pixel channel


IMAGE_SIZES: dict[str, ImageSize] = {
    "paper": ImageSize((64, 64, 64), 512, 64, PAPER_KERNELS),
    "small": ImageSize((32, 32, 32), 256, 32, (7, 5, 5, 3, 3)),
}


def image_size(name: str) -> ImageSize:
    if name not in IMAGE_SIZES:
        raise ValueError(f"unknown size {name!r}; choose one of: {', '.join(IMAGE_SIZES)}")
    return IMAGE_SIZES[name]


def build_image_networks(size: str, latent_dim: int, init: str = "reference", context_dim: int = 0):
    """(ResNetEncoder, PixelCNNDecoder) of the named size; `context_dim` > 0 for a posterior flow."""
    spec = image_size(size)
    encoder = ResNetEncoder(latent_dim, spec.encoder_channels, spec.encoder_hidden, init, context_dim)
    decoder = PixelCNNDecoder(latent_dim, spec.decoder_channels, spec.decoder_kernels, spec.latent_maps)
    return encoder, decoder
