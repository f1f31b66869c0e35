"""The global-view cut-off (Fast, docs/ALGORITHM.md section 7): a step whose global weight c2 is within `cutoff` of 0
evaluates only the local windows, one within `cutoff` of 1 only the dilated views.

c2 = cf(t)^cosine_scale_2 falls below 0.05 in the last steps of every phase (at cosine scale 2 = 1, below t = 144 of
1000), where the dilated views' share of the fused prediction is under 5% but costs d^2 views of the evaluation.
Applied to the actual c2 of each step, so it follows the user's cosine scales; at cutoff 0 nothing changes.
"""
from __future__ import annotations

from .blur import cosine_factor


def cut(c2: float, cutoff: float) -> float:
    """The weight the fusion uses: 0 below the cut-off, 1 above 1 - cut-off, c2 itself otherwise."""
    if c2 < cutoff:
        return 0.0
    if c2 > 1 - cutoff:
        return 1.0
    return c2


def views_evaluated(t: float, n_local: int, n_global: int, cosine_scale_2: float, cutoff: float,
                    num_timesteps: int = 1000) -> int:
    """Views one evaluation at model timestep t makes: a weight of 0 skips the global views, 1 the local ones."""
    c2 = cut(cosine_factor(t, num_timesteps) ** cosine_scale_2, cutoff)
    return (n_local if c2 < 1 else 0) + (n_global if c2 > 0 else 0)
