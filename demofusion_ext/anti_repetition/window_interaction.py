"""Window interaction (AccDiffusion, ECCV 2024): the dilated global views swap values before the model call.

DemoFusion's d*d dilated views are strided sub-grids of one blurred latent; the model sees each alone, so each
may settle on its own reading of the picture. Window interaction lets them exchange semantics: at every
(channel, sub-grid cell), the views' values are randomly permuted among them before the model call, and
the predictions are permuted back afterwards, so each view gets, at that cell, the prediction made for its
own value, but made with neighbours that came from the other views.

Layouts: a stack of views is [n, rows, C, gh, gw] (view-major); a permutation is a LongTensor [n, C, gh, gw]
where perm[r, c, i, j] is the view whose value slot r receives at (c, i, j). Every row of a view (all images,
cond and uncond) shares the permutation. The draws come from their own seeded CPU generator per fused
evaluation (seeds.interaction_generator), independent of the global torch RNG and of the jitter stream.
"""
from __future__ import annotations

import torch


def cell_permutations(n: int, channels: int, gh: int, gw: int, generator: torch.Generator) -> torch.Tensor:
    """An independent random permutation of the n views per (channel, cell): LongTensor [n, channels, gh, gw]
    on the CPU (move it to the latents' device)."""
    keys = torch.rand(channels, gh, gw, n, generator=generator, device="cpu")
    return keys.argsort(dim=-1).permute(3, 0, 1, 2).contiguous()


def _index(stack: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    if perm.shape != (stack.shape[0], *stack.shape[2:]):
        raise ValueError(f"permutation {tuple(perm.shape)} does not fit a stack of views {tuple(stack.shape)}")
    return perm.to(stack.device).unsqueeze(1).expand_as(stack)


def shuffle_views(stack: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Slot r takes, at every (c, i, j), the value of view perm[r, c, i, j]: stack [n, rows, C, gh, gw]."""
    return stack.gather(0, _index(stack, perm))


def unshuffle_views(stack: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """The inverse of shuffle_views: view perm[r, c, i, j] takes slot r's value at (c, i, j)."""
    return torch.empty_like(stack).scatter_(0, _index(stack, perm), stack)
