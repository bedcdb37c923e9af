"""The PixelCNN decoder for 28x28 binary images (reference-spec §2.5; He et al.'s "V2", which DU-VAE
reuses). Not a gated PixelCNN despite the paper's wording: residual masked-convolution blocks.

- z -> Linear(D, 4*28*28) -> 4 feature maps, concatenated after the image channel: 5 input channels.
- Block 0 ("mask A"): a k x k masked conv 5 -> C (no bias) -> BN -> ELU. Only the pixel channel is
  masked (the centre pixel, the pixels right of it and every row below are hidden); the latent maps
  are seen whole.
- Blocks 1..n-1 (mask B, centre allowed): 1x1 conv C -> C/2 -> BN -> ELU -> masked k x k conv
  C/2 -> C/2 -> BN -> ELU -> 1x1 conv C/2 -> C -> BN, plus the input, then ELU.
- n-2 skip blocks (same structure): before main block i >= 3, skip_{i-3}(output of block i-3) is
  added to its input; after the last block, skip_{n-3}(output of block n-3) is added.
- Head: 1x1 conv C -> C (no bias) -> BN -> ELU -> 1x1 conv C -> 1 (no bias): one logit per pixel.

The paper size is C = 64 and kernels 7,7,7,7,7,5,5,5,5,3,3,3,3 (13 blocks, 11 skips).
log p(x|z) is the Bernoulli log-likelihood summed over pixels, in nats per image, computed from the
logits with a stable log-sigmoid (the reference adds 1e-12 inside log(sigmoid); same values where
that epsilon does not matter).

Causality holds exactly in eval mode; in training mode BatchNorm's batch statistics are shared by
all pixels and images of a batch (as in the reference), a dependence of order 1 / (B H W).
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

from duvae_cli.models.resnet import conv_reference_init, fast_layout

PAPER_KERNELS = (7, 7, 7, 7, 7, 5, 5, 5, 5, 3, 3, 3, 3)


def causal_mask(out_channels: int, in_channels: int, kernel: int, include_centre: bool,
                masked_channels: int | None = None) -> torch.Tensor:
    """(out, in, k, k) of 0/1: the centre row right of the centre (and the centre itself unless
    `include_centre`) and every row below are 0 for the first `masked_channels` input channels
    (all by default)."""
    mask = torch.ones(out_channels, in_channels, kernel, kernel)
    masked = in_channels if masked_channels is None else masked_channels
    centre = kernel // 2
    mask[:, :masked, centre, centre + int(include_centre):] = 0
    mask[:, :masked, centre + 1:] = 0
    return mask


class MaskedConv2d(nn.Conv2d):
    """A 'same'-padded k x k convolution whose weight is multiplied by a fixed causal mask.

    The reference zeroes the masked weights in place at every forward; multiplying instead gives the
    same outputs and leaves the masked entries with zero gradient. Where every input channel is
    masked (mask-B blocks), the k // 2 kernel rows below the centre are zero: the convolution then
    runs with the top k // 2 + 1 rows only, over the input padded above but not below, which adds
    the same nonzero products (~40% fewer multiply-adds at k = 7; the masked entries of the cropped
    rows, right of the centre, stay)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, include_centre: bool,
                 masked_channels: int | None = None):
        super().__init__(in_channels, out_channels, kernel, padding=kernel // 2, bias=False)
        self.register_buffer("mask", causal_mask(out_channels, in_channels, kernel, include_centre,
                                                 masked_channels))
        masked = in_channels if masked_channels is None else masked_channels
        self.rows = kernel // 2 + 1 if masked == in_channels else kernel  # kernel rows that can be nonzero

    def masked_weight(self) -> torch.Tensor:
        """The weight times the mask, its first `rows` kernel rows: (out, in, rows, k)."""
        return self.weight[:, :, : self.rows] * self.mask[:, :, : self.rows]

    def convolve(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """x (N, in, h, W) -> (N, out, h, W) with a weight shaped as `masked_weight`'s."""
        x, reach = fast_layout(x), self.kernel_size[0] // 2
        if self.rows == self.kernel_size[0]:
            return F.conv2d(x, weight, bias, 1, reach)
        return F.conv2d(F.pad(x, (reach, reach, reach, 0)), weight, bias)  # no row below is seen

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convolve(x, self.masked_weight())


class ConvBN(nn.Sequential):
    """conv -> BatchNorm2d (-> ELU): in training, or wherever gradients are recorded, the three
    modules one after the other; in eval mode without gradients (IW-NLL, sampling) BN is folded into
    the convolution, w' = w s and b' = beta - mu s with s = g / sqrt(var + eps), computed once per
    version of the weights and statistics, and the ELU runs in place. Same function; float32
    rounding differs by ~1e-6 relative (tests/test_images_models.py)."""

    def __init__(self, conv: nn.Conv2d, channels: int, activate: bool = True):
        super().__init__(conv, nn.BatchNorm2d(channels), *([nn.ELU(inplace=True)] if activate else []))
        self.activate = activate
        self._folded: tuple[tuple, torch.Tensor, torch.Tensor] | None = None  # (key, weight, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or torch.is_grad_enabled():
            return super().forward(x)
        conv = self[0]
        weight, bias = self.folded()
        if isinstance(conv, MaskedConv2d):
            out = conv.convolve(x, weight, bias)
        else:
            out = F.conv2d(fast_layout(x), weight, bias, conv.stride, conv.padding)
        return F.elu(out, inplace=True) if self.activate else out

    def folded(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight, bias) of the convolution with BN's eval-mode affine map folded in."""
        conv, norm = self[0], self[1]
        tensors = (conv.weight, norm.weight, norm.bias, norm.running_mean, norm.running_var)
        key = tuple((t.data_ptr(), t._version) for t in tensors)
        if self._folded is None or self._folded[0] != key:
            weight = conv.masked_weight() if isinstance(conv, MaskedConv2d) else conv.weight
            scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)  # (out,)
            self._folded = (key, weight * scale[:, None, None, None], norm.bias - norm.running_mean * scale)
        return self._folded[1], self._folded[2]


def conv_bn(conv: nn.Module, channels: int, activate: bool = True) -> ConvBN:
    return ConvBN(conv, channels, activate)


class MaskedResidualBlock(nn.Module):
    """1x1 down to C/2, masked (type B) k x k, 1x1 back up to C; residual add, then ELU."""

    def __init__(self, channels: int, kernel: int):
        super().__init__()
        half = channels // 2
        self.main = nn.Sequential(
            conv_bn(nn.Conv2d(channels, half, 1, bias=False), half),
            conv_bn(MaskedConv2d(half, half, kernel, include_centre=True), half),
            conv_bn(nn.Conv2d(half, channels, 1, bias=False), channels, activate=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.main(fast_layout(x))
        return F.elu(out.add_(x), inplace=True)  # BN's output is not needed by its backward: add in place


class PixelCNNDecoder(nn.Module):
    """p(x|z) for binary images (B, 1, H, W): residual masked convolutions conditioned on z."""

    def __init__(self, latent_dim: int, channels: int = 64, kernels: tuple[int, ...] = PAPER_KERNELS,
                 latent_maps: int = 4, image_size: int = 28):
        super().__init__()
        if len(kernels) < 3:
            raise ValueError(f"the PixelCNN needs at least 3 blocks (skips start at block 3), got {len(kernels)}")
        self.channels, self.image_size, self.latent_maps = channels, image_size, latent_maps
        # latent_maps = 0: a PixelCNN that does not see z (LIDVAE adds z to its logits instead, injective.py)
        self.project = nn.Linear(latent_dim, latent_maps * image_size * image_size) if latent_maps else None
        self.first = conv_bn(MaskedConv2d(1 + latent_maps, channels, kernels[0], include_centre=False,
                                          masked_channels=1), channels)  # mask A, pixel channel only
        self.blocks = nn.ModuleList(MaskedResidualBlock(channels, k) for k in kernels[1:])
        self.skips = nn.ModuleList(MaskedResidualBlock(channels, k) for k in kernels[1:-1])
        self.head = nn.Sequential(conv_bn(nn.Conv2d(channels, channels, 1, bias=False), channels),
                                  nn.Conv2d(channels, 1, 1, bias=False))
        self._reference_init()

    def _reference_init(self) -> None:
        """Block convs N(0, sqrt(2 / (k^2 out))), BN 1/0, latent Linear Xavier-uniform with bias 0;
        the head's two 1x1 convs keep PyTorch's defaults."""
        conv_reference_init(self, skip=set(self.head.modules()))
        if self.project is not None:
            nn.init.xavier_uniform_(self.project.weight)
            nn.init.zeros_(self.project.bias)

    def logits(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """x (N, 1, h, W) = the top h <= H rows, z (N, D) -> logits (N, 1, h, W). Only the first
        conv looks down (k0 // 2 rows, at the unmasked latent maps), so with h < H the logits of the
        rows above h - k0 // 2 are exact."""
        side = self.image_size
        maps = self.project(z).view(-1, self.latent_maps, side, side)[:, :, : x.shape[2]]
        return self.trunk(torch.cat([x, maps], dim=1))

    def trunk(self, inputs: torch.Tensor) -> torch.Tensor:
        """The masked network: inputs (N, 1 + latent_maps, h, W), pixels first -> logits (N, 1, h, W)."""
        features = self.first(inputs)  # (N, C, h, W), the output of block 0
        outputs = [features]  # block outputs whose skip is still to come (the last 3)
        for i, block in enumerate(self.blocks, start=1):
            if i >= 3:
                features = features + self.skips[i - 3](outputs.pop(0))  # output of block i - 3
            features = block(features)
            outputs.append(features)
        return self.head(features + self.skips[-1](outputs.pop(0)))  # last skip: output of block n - 3

    def log_prob(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x | z) in nats per image. x (B, 1, H, W) of 0/1; z (B, D) -> (B,), (B, K, D) -> (B, K)."""
        samples = z.dim() == 3
        n, k = x.shape[0], (z.shape[1] if samples else 1)
        if samples:
            x = x.repeat_interleave(k, dim=0)  # (B*K, 1, H, W), sample-major within example
        logits = self.logits(x, z.reshape(n * k, -1))
        log_p = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
        return log_p.view(n, k) if samples else log_p

    def chunk_bytes(self, rows: int) -> int:
        """Working memory (bytes) of `log_prob` in inference mode on `rows` (image x sample) rows:
        12 live C-channel float32 maps of H x W per row (block outputs awaiting their skips and a
        block's internals; measured peak: ~9), plus the input and latent maps."""
        per_pixel = 12 * self.channels + 2 * (1 + self.latent_maps)
        return rows * per_pixel * self.image_size * self.image_size * 4

    @property
    def cpu_chunk_rows(self) -> int:
        """Rows per chunk that keep one C-channel map under 32 MiB: glibc serves larger blocks with
        fresh mmaps, whose page faults doubled the CPU time per row in measurements (docs/metrics.md)."""
        return max(1, 2**25 // (self.channels * self.image_size * self.image_size * 4))

    @torch.no_grad()
    def sample(self, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Ancestral sampling, pixel by pixel in raster order: z (N, D) -> x (N, 1, H, W) of 0/1.
        `generator` is a CPU generator (default: torch's global one). Row r is computed from the
        top r + 1 + k0 // 2 rows only, which is exact (see `logits`) and saves ~40% of the work."""
        side, reach = self.image_size, self.first[0].kernel_size[0] // 2
        x = z.new_zeros(z.shape[0], 1, side, side)
        for row in range(side):
            top = x[:, :, : min(side, row + 1 + reach)]
            for col in range(side):
                probs = torch.sigmoid(self.logits(top, z)[:, 0, row, col])  # (N,)
                uniform = torch.rand(probs.shape, generator=generator).to(probs.device)
                x[:, 0, row, col] = (uniform < probs).to(x.dtype)
        return x
