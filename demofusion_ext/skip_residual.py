"""Skip residual (docs/ALGORITHM.md section 2) and the per-phase mean/std anchoring to the reference latent.

The skip residual replaces the SAMPLER'S OWN STATE, not just the model input, so that the sampler
continues from the mixed state: x <- (1 - c1) x + c1 (z + sigma n).
"""
from __future__ import annotations

import torch

from .blur import match_stats, per_image_stats


def noised(z: torch.Tensor, noise: torch.Tensor, sigma) -> torch.Tensor:
    """The previous phase's latent at noise level sigma, k-diffusion form (x = x0 + sigma n)."""
    return z + sigma * noise


def noised_vp(z: torch.Tensor, noise: torch.Tensor, alpha_bar) -> torch.Tensor:
    """The same for timestep (DDIM/PLMS) samplers, whose state is sqrt(a) x0 + sqrt(1 - a) n. The coefficients are
    taken in float64: in float16, 1 - a near t = 0 keeps about one significant digit."""
    a = float(alpha_bar)
    return z * a ** 0.5 + noise * (1 - a) ** 0.5


def skip_residual(x: torch.Tensor, target: torch.Tensor, c1: float, inplace: bool = False) -> torch.Tensor:
    """(1 - c1) x + c1 target; exactly `target` at c1 = 1 and `x` at c1 = 0. In place when asked."""
    if c1 == 0:
        return x
    mixed = target.to(x.dtype) if c1 == 1 else x * (1 - c1) + target.to(x.dtype) * c1
    if inplace:
        x.copy_(mixed)
        return x
    return mixed.clone() if mixed is target else mixed


def anchor(latent: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Rescale each image of `latent` to the mean and std of the same image of `reference`: the phase-1 latent, or
    the encoded picture when img2img enters at a later phase."""
    mean, std = per_image_stats(reference.to(latent.device))
    return match_stats(latent, mean, std)
