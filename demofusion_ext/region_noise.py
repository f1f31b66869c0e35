"""Region-wise noise (Fast, docs/ALGORITHM.md section 7; the training-free part of LSRNA, CVPR 2025): before an
enlarged phase starts, Gaussian noise is added to its starting latent with a standard deviation per latent cell that
follows the edges of the picture it was enlarged from: none where the picture is flat, `strength` where its edges
are densest. Flat areas stay clean; detailed ones get room to sharpen in a relayed (shortened) phase.

LSRNA takes Canny edges of the previous phase's picture, average-pooled to the latent and mapped to 0 .. 1.2. Here
the edges are where the Sobel gradient of the luma exceeds EDGE_LEVEL (a step of a fifth of the range between
neighbouring pixels; Canny's thinning and hysteresis are left out: the pooling averages them away).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .seeds import region_noise_generator

EDGE_LEVEL = 0.1           # luma change per pixel (range 0..1, central difference) that counts as an edge
_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8


def edge_map(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 pictures [B, H, W, 3] -> edges [B, 1, H, W] as 0 or 1."""
    rgb = pixels.permute(0, 3, 1, 2).float() / 255
    luma = (rgb * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    padded = F.pad(luma, (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(padded, _SOBEL_X.view(1, 1, 3, 3))
    gy = F.conv2d(padded, _SOBEL_X.t().reshape(1, 1, 3, 3))
    return ((gx ** 2 + gy ** 2).sqrt() > EDGE_LEVEL).float()


def noise_scale(pixels: torch.Tensor, shape: tuple[int, int], strength: float) -> torch.Tensor:
    """The noise's standard deviation per latent cell [B, 1, h, w]: the share of edge pixels in each cell, rescaled per
    image to 0 .. 1 (a picture with the same share everywhere keeps that share), times `strength`."""
    density = F.adaptive_avg_pool2d(edge_map(pixels), shape)
    low = density.amin(dim=(1, 2, 3), keepdim=True)
    span = density.amax(dim=(1, 2, 3), keepdim=True) - low
    spread = torch.where(span > 0, (density - low) / span.clamp_min(1e-12), density)
    return spread * strength


def add_region_noise(z: torch.Tensor, pixels: torch.Tensor, strength: float, seeds: list[int],
                     phase: int) -> torch.Tensor:
    """z [B, C, h, w] plus noise scaled per cell by the edges of `pixels` (one picture per image, or one for all);
    each image's noise is drawn from its own seed and the phase, on the CPU (the same on any device)."""
    scale = noise_scale(pixels, tuple(z.shape[-2:]), strength)
    if scale.shape[0] == 1 and z.shape[0] > 1:
        scale = scale.expand(z.shape[0], -1, -1, -1)
    noise = torch.stack([torch.randn(z.shape[1:], generator=region_noise_generator(seed, phase))
                         for seed in seeds])
    return z + (scale * noise).to(z)
