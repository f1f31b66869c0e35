"""Every random stream of a run, named by the image's seed and what it draws for: the one place they are derived.

A stream's name joins its parts with ':', so different parts never meet in one name the way arithmetic keys do
(seed * 1009 + phase and 1000 * phase + step collide). Tensors come from a CPU torch generator seeded from the
name's SHA-256 (the same draws on any device); the jitter's integers come from Python's `random`, seeded with the
name itself. Each stream's first part sets it apart: the driver's noise starts with the seed (a number), the others
with a word. Torch's CPU generator keeps only the low 32 bits of a seed, so two names share a tensor stream with
probability 2^-32.
"""
from __future__ import annotations

import hashlib
import random

import torch


def stream_name(*parts) -> str:
    return ":".join(str(p) for p in parts)


def generator_seed(*parts) -> int:
    """A 63-bit torch seed for the stream named by `parts`."""
    return int.from_bytes(hashlib.sha256(stream_name(*parts).encode()).digest()[:8], "little") >> 1


def torch_generator(*parts) -> torch.Generator:
    return torch.Generator("cpu").manual_seed(generator_seed(*parts))


def noise_generator(seed: int, *purpose) -> torch.Generator:
    """The driver's noise of one image: (seed, "start", phase) or (seed, "step", phase, draw)."""
    return torch_generator(seed, *purpose)


def jitter_rng(seed: int, phase: int, evaluation: int) -> random.Random:
    """The window jitter of one fused evaluation, shared by the images of a batch."""
    return random.Random(stream_name("demofusion", seed, phase, evaluation))


def interaction_generator(seed: int, phase: int, evaluation: int) -> torch.Generator:
    """The window-interaction permutations of one fused evaluation: every call of the evaluation asks afresh and
    draws the same."""
    return torch_generator("demofusion-window-interaction", seed, phase, evaluation)


def region_noise_generator(seed: int, phase: int) -> torch.Generator:
    """The region-wise noise of one image at the start of one phase."""
    return torch_generator("demofusion-region-noise", seed, phase)
