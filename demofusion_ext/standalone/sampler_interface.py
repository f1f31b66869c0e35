"""The driver's side of k-diffusion's sampler convention (samplers.py): which function, which sigmas, and the exact
sigma of each model call."""
from __future__ import annotations

import inspect
from typing import Callable

import torch

from .samplers import SAMPLERS


def sampler_function(sampler: str | Callable) -> Callable:
    if callable(sampler):
        return sampler
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}: use one of {sorted(SAMPLERS)} or a k-diffusion sampler "
                         f"function")
    return SAMPLERS[sampler]


def takes_noise_sampler(sample: Callable) -> bool:
    """Whether the sampler draws fresh noise through `noise_sampler` (then the driver's seeded draws feed it)."""
    try:
        return "noise_sampler" in inspect.signature(sample).parameters
    except (TypeError, ValueError):
        return False


def on_device(sigmas: torch.Tensor, device: torch.device) -> torch.Tensor:
    """The sampling sigmas next to the latent (k-diffusion's samplers broadcast them against x), in float64 where the
    device has it (not MPS): the schedule's own values, whatever the latent's dtype."""
    return sigmas.to(device, torch.float32 if device.type == "mps" else torch.float64)


def exact_sigma(sigma: torch.Tensor, sigmas: torch.Tensor) -> float:
    """A model call's sigma in float64. A sampler passes `sigmas[i] * s_in`, rounded to the latent's dtype; where
    that is a schedule sigma (within twice the dtype's resolution) the schedule's own value is taken, so t(sigma) and
    the noise level carry no rounding. An intermediate sigma (e.g. DPM2's midpoint) is taken as it comes."""
    s = float(sigma.flatten()[0])
    near = float(sigmas[int((sigmas - s).abs().argmin())])
    return near if abs(near - s) <= 2 * torch.finfo(sigma.dtype).eps * abs(near) else s
