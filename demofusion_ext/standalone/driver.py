"""A host-agnostic DemoFusion run: every phase, with any raw-prediction callable and a k-diffusion sampler.

`predict(x_in, t, **cond)` is the model's raw eps prediction for model input x_in (x scaled by
1/sqrt(sigma^2 + 1)) at timesteps t [rows]; it is all the driver knows of the model. Every tensor follows the
device and dtype of the latent (`device`/`dtype`, or `first_latent`'s); noise is drawn on the CPU from
per-image generators, so a seed gives the same picture on any device.
"""
from __future__ import annotations

import hashlib
from typing import Callable, Sequence

import torch

from ..fusion import Condition
from ..phase_runner import PhaseRunner
from ..phases import Phase, plan_phases
from ..settings import DemoFusionSettings
from ..skip_residual import anchor
from ..upscale import upscale_latent  # noqa: F401  (public API: demofusion_ext.upscale_latent)
from ..view_batch import ViewBatch
from .noise_schedule import DiscreteSchedule
from .samplers import SAMPLERS


def draw_key(seed: int, *purpose) -> int:
    """A 63-bit generator seed for one draw, e.g. (seed, "phase", 2) or (seed, "step", 2, 5): distinct names
    never share a stream (seed * 1009 + phase and 1000 * phase + step could)."""
    name = ":".join(str(p) for p in (seed,) + purpose).encode()
    return int.from_bytes(hashlib.sha256(name).digest()[:8], "little") >> 1


def seeded_noise(seeds: Sequence[int], device=None, dtype=torch.float32) -> Callable[..., torch.Tensor]:
    """noise(shape, *purpose): one CPU generator per image seed and purpose, moved to `device` in `dtype`."""
    def noise(shape, *purpose) -> torch.Tensor:
        draws = [torch.randn(shape[1:], generator=torch.Generator("cpu").manual_seed(draw_key(s, *purpose)),
                             device="cpu") for s in seeds]
        return torch.stack(draws).to(device=device, dtype=dtype)
    return noise


def phase_sigmas(sigmas: torch.Tensor, strength: float) -> torch.Tensor:
    """The tail of the schedule that a phase of denoising `strength` runs (1 = all of it)."""
    steps = len(sigmas) - 1
    start = min(steps - 1, int(round(steps * (1 - strength))))
    return sigmas[start:]


def run_demofusion(predict: Callable, base_shape: tuple[int, int, int, int], settings: DemoFusionSettings,
                   *, steps: int = 10, sampler: str = "euler", seeds: Sequence[int] = (0,),
                   schedule: DiscreteSchedule | None = None, schedule_kind: str = "uniform",
                   condition: Condition | None = None, first_latent: torch.Tensor | None = None,
                   on_phase: Callable[[Phase, torch.Tensor], None] | None = None,
                   device=None, dtype=None) -> list[torch.Tensor]:
    """Run phase 1 (or take `first_latent` as its result) and phases 2..S; returns each phase's latent."""
    schedule = schedule or DiscreteSchedule.stable_diffusion()
    sample = SAMPLERS[sampler]
    b, c, h, w = base_shape
    if first_latent is not None:
        device, dtype = first_latent.device, first_latent.dtype
    device, dtype = torch.device(device or "cpu"), dtype or torch.float32
    noise = seeded_noise(seeds, device, dtype)
    sigmas = schedule.get_sigmas(steps, schedule_kind)      # CPU float64 scalars: exact whatever the latent's dtype
    phases = plan_phases(h, w, settings.scale)
    view_batch = ViewBatch(settings.view_batch_size)         # shrunk once on out-of-memory, for the whole run

    def denoiser(runner: PhaseRunner | None):
        def model(x, sigma):
            sigma = float(sigma)
            t = schedule.sigma_to_t(sigma)

            def call(xb, **kw):
                # timesteps in float32 at least: float16 rounds t to 0.5 above 512
                wide = torch.promote_types(xb.dtype, torch.float32)
                return predict(xb, torch.full((xb.shape[0],), t, device=xb.device, dtype=wide), **kw)
            if runner is None:
                eps = call(x / (sigma ** 2 + 1) ** 0.5, **(condition([]) if condition else {}))
            else:
                runner.mix(x, t, sigma=sigma)      # in place, before the input is formed: the step starts here
                with runner.evaluation():
                    eps = runner.predict(call, x / (sigma ** 2 + 1) ** 0.5, t, condition)
            return x - sigma * eps
        return model

    def step_noise(phase):
        counter = iter(range(1 << 30))
        return lambda x: noise(tuple(x.shape), "step", phase.index, next(counter))

    if first_latent is None:
        x = noise((b, c, h, w), "start", 1) * float(sigmas[0])
        first_latent = sample(denoiser(None), x, sigmas, noise=step_noise(phases[0]))
    results = [first_latent]
    if on_phase:
        on_phase(phases[0], first_latent)
    for phase in phases[1:]:
        z = upscale_latent(results[-1], phase.shape)
        n = noise(tuple(z.shape), "start", phase.index)
        runner = PhaseRunner(phase, (h, w), settings, z, n, seed=seeds[0], num_timesteps=schedule.num_timesteps,
                             view_batch=view_batch)
        ph_sigmas = phase_sigmas(sigmas, settings.phase_denoise)
        x = z + float(ph_sigmas[0]) * n
        out = sample(denoiser(runner), x, ph_sigmas, noise=step_noise(phase))
        results.append(anchor(out, first_latent))
        if on_phase:
            on_phase(phase, results[-1])
    return results
