"""The ResNet encoder for 28x28 images (reference-spec §2.4; DU-VAE's `ResNetEncoderV2`).

Three residual blocks with stride 2 take 28x28 to 14x14, 7x7 and 4x4; a 4x4 conv (no bias) -> BN ->
ELU gives a `hidden`-vector (paper: 512), and Linear(hidden, 2 D) gives (mean, raw log-variance).
Block: conv3x3 (stride s, no bias) -> BN -> ELU -> conv3x3 -> BN, plus the shortcut (a 1x1 conv with
stride s + BN where the shape changes), then ELU.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from duvae_cli.models.gaussian import posterior_head


def conv_reference_init(network: nn.Module, skip: set | frozenset = frozenset()) -> None:
    """The reference's image initialisation: every Conv2d not in `skip` N(0, sqrt(2 / (k^2 out))),
    every BatchNorm2d weight 1 and bias 0."""
    for module in network.modules():
        if isinstance(module, nn.Conv2d) and module not in skip:
            k = module.kernel_size[0]
            nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / (k * k * module.out_channels)))
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight), nn.init.zeros_(module.bias)


def fast_layout(x: torch.Tensor) -> torch.Tensor:
    """`x` in the memory layout its convolutions run fastest in: channels-last on the CPU (oneDNN's
    AVX-512 kernels work on NHWC without reordering; docs/benchmarks.md "Images"), unchanged on other
    devices. A no-op for a tensor already in that layout."""
    if x.device.type == "cpu" and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


class ResidualBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ELU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, 1, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.elu(self.main(x).add_(self.shortcut(x)), inplace=True)  # BN's output: free to overwrite


class ResNetEncoder(nn.Module):
    """x (B, 1, 28, 28) -> (mean, raw logvar), (B, D) each; with `context_dim` > 0 also a context
    vector (B, C) for a posterior flow (reference-spec §2.6: the image Linear has a bias)."""

    def __init__(self, latent_dim: int, channels: tuple[int, ...] = (64, 64, 64), hidden: int = 512,
                 init: str = "reference", context_dim: int = 0):
        super().__init__()
        blocks, previous = [], 1
        for width in channels:  # stride 2 each: 28 -> 14 -> 7 -> 4
            blocks.append(ResidualBlock(previous, width, stride=2))
            previous = width
        self.blocks = nn.Sequential(*blocks)
        side = 28
        for _ in channels:
            side = (side + 1) // 2
        self.pool = nn.Sequential(nn.Conv2d(previous, hidden, side, bias=False),  # (B, hidden, 1, 1)
                                  nn.BatchNorm2d(hidden), nn.ELU(inplace=True))
        self.head = nn.Linear(hidden, 2 * latent_dim + context_dim)
        self.sizes = [latent_dim, latent_dim] + ([context_dim] if context_dim else [])
        if init == "reference":
            self._reference_init()
        elif init != "default":  # "default": PyTorch's init (config/build.py always asks for "reference")
            raise ValueError(f"init must be 'reference' or 'default', got {init!r}")

    def _reference_init(self) -> None:
        """Convs N(0, sqrt(2 / (k^2 out))), BN 1/0, the Linear Xavier-uniform with bias 0."""
        conv_reference_init(self)
        nn.init.xavier_uniform_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(mean, logvar), (B, D) each; with a context, (mean, logvar, context (B, C))."""
        features = self.pool(self.blocks(fast_layout(x))).flatten(1)  # (B, hidden)
        return posterior_head(self.head, features, self.sizes)  # in float32 under autocast too
