"""Random affine transforms of image batches: torchvision's RandomAffine on tensors, without the
torchvision dependency (CR-VAE's augmentation, methods/cr.py; docs/training.md, "CR-VAE").

Per image: a rotation U(-degrees, degrees), an integer shift round(U(-translate W, translate W)) pixels
per axis and a scale U(scale_min, scale_max), about the image centre, nearest neighbour, zero fill;
binary images stay 0/1. Its random numbers come from the given generator (default: torch's global
one, saved in every checkpoint, so `--resume` is exact).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_affine(images: torch.Tensor, degrees: float, translate: float, scale: tuple[float, float],
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """torchvision's RandomAffine(degrees, (translate, translate), scale) per image, nearest, fill 0:
    images (B, C, H, W) -> the same shape. Draws 4 uniforms per image from `generator` (CPU; default
    torch's global one)."""
    n, _, height, width = images.shape
    u = torch.rand(n, 4, generator=generator, dtype=torch.float64)
    angle = math.radians(degrees) * (2 * u[:, 0] - 1)
    shift_x = torch.round(translate * width * (2 * u[:, 1] - 1))  # whole pixels, as torchvision
    shift_y = torch.round(translate * height * (2 * u[:, 2] - 1))
    factor = scale[0] + (scale[1] - scale[0]) * u[:, 3]
    return affine(images, angle, shift_x, shift_y, factor)


def affine(images: torch.Tensor, angle: torch.Tensor, shift_x: torch.Tensor, shift_y: torch.Tensor,
           factor: torch.Tensor) -> torch.Tensor:
    """Rotate each image (B, C, H, W) counter-clockwise by `angle` (radians) and scale it by `factor`
    about its centre, then shift it by (shift_x right, shift_y down) pixels; nearest, fill 0. Each
    argument (B,). Square images (a rotation in coordinates normalised per axis)."""
    _, _, height, width = images.shape
    # grid_sample reads, for every output pixel p, the input at M^-1 (p - t), with M = factor x
    # rotation(angle) about the centre; coordinates normalised to [-1, 1] (align_corners=False).
    # (y points down, so a counter-clockwise turn on screen has sin(-angle) in these coordinates)
    cos, sin = torch.cos(angle) / factor, -torch.sin(angle) / factor
    tx, ty = 2 * shift_x / width, 2 * shift_y / height
    theta = torch.stack([torch.stack([cos, sin, -(cos * tx + sin * ty)], -1),
                         torch.stack([-sin, cos, -(-sin * tx + cos * ty)], -1)], 1)  # (B, 2, 3)
    theta = theta.to(images.device, images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="nearest", padding_mode="zeros", align_corners=False)
