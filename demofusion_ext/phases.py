"""The phase plan (progressive upscaling): which latent size each phase works at, and its dilation."""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Phase:
    index: int        # 1-based; phase 1 is the ordinary generation at the base size
    scale: float      # size relative to the base
    height: int       # latent cells
    width: int
    dilation: int     # stride of the global (dilated) views; 1 in phase 1

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width


def dilation_for(scale: float) -> int:
    """Integer phases dilate by their scale; a fractional last phase by the nearest integer >= 2 (half rounds up)."""
    if scale == int(scale):
        return int(scale)
    return max(2, math.floor(scale + 0.5))


def plan_phases(base_height: int, base_width: int, scale: float) -> list[Phase]:
    """Phases 1..floor(S) at whole multiples of the base latent, plus one at S when S is fractional.

    Sizes are rounded to whole latent cells, so the final image is S x the base rounded to a multiple of 8 px.
    """
    if base_height < 1 or base_width < 1:
        raise ValueError(f"base latent size {base_height}x{base_width} must be at least 1x1")
    if scale < 1:
        raise ValueError(f"scale {scale!r} must be at least 1")
    scales = [float(k) for k in range(1, int(math.floor(scale)) + 1)]
    if scale > scales[-1]:
        scales.append(float(scale))
    return [Phase(i + 1, s, int(s * base_height + 0.5), int(s * base_width + 0.5), dilation_for(s))
            for i, s in enumerate(scales)]


def entry_phase(phases: list[Phase], picture: tuple[int, int] | None) -> Phase:
    """img2img: the largest phase whose size a picture of `picture` = (width, height) px covers on both sides. The
    picture enters there with its own detail instead of being shrunk to phase 1, and the phases below are skipped.
    A picture that covers no phase beyond the first (or txt2img: None) starts at phase 1, as always."""
    if picture is None:
        return phases[0]
    width, height = picture
    covered = [ph for ph in phases if ph.width * 8 <= width and ph.height * 8 <= height]
    return covered[-1] if covered else phases[0]


def model_evaluations(phases: list[Phase], window: tuple[int, int], stride: float) -> list[tuple[int, int]]:
    """(local views, global views) per fused evaluation of each phase: the cost model of docs/ALGORITHM.md section 5."""
    from .views import window_starts, window_stride
    out = []
    for ph in phases:
        if ph.index == 1:
            out.append((1, 0))
            continue
        sh, sw = window_stride(window, stride)
        n_local = len(window_starts(ph.height, window[0], sh)) * len(window_starts(ph.width, window[1], sw))
        out.append((n_local, ph.dilation ** 2))
    return out


def tail_steps(steps: int, strength: float) -> int:
    """Steps a sampler runs from denoising `strength` by the WebUI's img2img rule: the last int(strength x steps) + 1
    steps of the schedule (all of them at strength 1)."""
    return min(steps, int(min(strength, 0.999) * steps) + 1)


def relay_steps(steps: int, strength: float) -> int:
    """Steps a relayed phase runs (Fast): the last round(strength x steps) of the schedule, at least one (LSRNA runs
    30 of 50 at 0.6)."""
    return max(1, min(steps, int(strength * steps + 0.5)))


def phase_timesteps(steps: int, strength: float, relay: bool, num_timesteps: int = 1000) -> list[float]:
    """The model timestep of each step a phase runs, on the uniform schedule (the WebUI's Automatic for Euler):
    relayed, the last `relay_steps` of a `steps`-step schedule; otherwise all `steps` steps over the end of a longer
    schedule (the WebUI's "exact steps" rule, which DemoFusion's own phases use in Exact)."""
    if relay:
        n, length = relay_steps(steps, strength), steps
    else:
        n, length = steps, int(steps / min(strength, 0.999)) if strength < 1 else steps
    if length <= 1:
        return [0.0] * n
    return [(num_timesteps - 1) * (1 - i / (length - 1)) for i in range(length - n, length)]
