"""Gaussian blur of the dilated paths, renormalised to the unblurred latent's statistics."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def gaussian_kernel_1d(size: int, sigma: float, dtype=torch.float32, device=None) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64, device="cpu") - (size - 1) / 2
    k = torch.exp(-x ** 2 / (2 * sigma ** 2))
    return (k / k.sum()).to(dtype=dtype, device=device)


def blur_sigma(sigma: float, cf: float, alpha3: float) -> float:
    """The blur shrinks with the schedule: sigma * (0.99 * cf^alpha3 + 0.01)."""
    return sigma * (0.99 * cf ** alpha3 + 0.01)


def per_image_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of each image, in float32 at least: half-precision sums over a latent lose digits."""
    flat = x.reshape(x.shape[0], -1).to(torch.promote_types(x.dtype, torch.float32))
    return flat.mean(1).view(-1, 1, 1, 1), flat.std(1).view(-1, 1, 1, 1)


def match_stats(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """x shifted and scaled to `mean` and `std` per image; a flat image (std 0) is only shifted."""
    m, s = per_image_stats(x)
    wide = x.to(m.dtype)
    s = torch.where(s > 0, s, torch.ones_like(s))     # a flat image is all mean: x - m = 0
    return ((wide - m) / s * std.to(m.dtype) + mean.to(m.dtype)).to(x.dtype)


def gaussian_blur(x: torch.Tensor, dilation: int, sigma: float) -> torch.Tensor:
    """Blur with a (2d-1)-tap Gaussian (zero padding, separable), then restore each image's mean and std."""
    size = 2 * dilation - 1
    if size == 1:
        return x
    c = x.shape[1]
    wide = torch.promote_types(x.dtype, torch.float32)       # a half-precision blur rounds at every tap
    k = gaussian_kernel_1d(size, sigma, wide, x.device)
    y = F.conv2d(x.to(wide), k.view(1, 1, size, 1).expand(c, 1, size, 1), padding=(size // 2, 0), groups=c)
    y = F.conv2d(y, k.view(1, 1, 1, size).expand(c, 1, 1, size), padding=(0, size // 2), groups=c)
    mean, std = per_image_stats(x)
    return match_stats(y, mean, std).to(x.dtype)


def cosine_factor(t: float, num_timesteps: int = 1000) -> float:
    """cf = 0.5 (1 + cos(pi (T - t) / T)): 1 at the noisy end of the schedule, 0 at t = 0.

    Driven by the model timestep t, not the step index: they differ for Karras and other schedules.
    """
    t = min(max(float(t), 0.0), float(num_timesteps))
    return 0.5 * (1.0 + math.cos(math.pi * (num_timesteps - t) / num_timesteps))
