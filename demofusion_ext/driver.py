"""A host-agnostic DemoFusion run: every phase, with any raw-prediction callable and a k-diffusion sampler.

`predict(x_in, t, **cond)` is the model's raw eps prediction for model input x_in (x scaled by
1/sqrt(sigma^2 + 1)) at timesteps t [rows]; it is all the driver knows of the model.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from .fusion import Condition
from .noise_schedule import DiscreteSchedule
from .phase_runner import PhaseRunner
from .phases import Phase, plan_phases
from .samplers import SAMPLERS
from .settings import DemoFusionSettings
from .skip_residual import anchor


def seeded_noise(seeds: Sequence[int]) -> Callable[[tuple, int], torch.Tensor]:
    """noise(shape, phase) with one generator per image seed, so batch items are independent."""
    def noise(shape, phase: int) -> torch.Tensor:
        return torch.stack([torch.randn(shape[1:], generator=torch.Generator().manual_seed(s * 1009 + phase))
                            for s in seeds])
    return noise


def upscale_latent(z: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(z, size=shape, mode="bicubic", align_corners=False)


def phase_sigmas(sigmas: torch.Tensor, strength: float) -> torch.Tensor:
    """The tail of the schedule that a phase of denoising `strength` runs (1 = all of it)."""
    steps = len(sigmas) - 1
    start = min(steps - 1, int(round(steps * (1 - strength))))
    return sigmas[start:]


def run_demofusion(predict: Callable, base_shape: tuple[int, int, int, int], settings: DemoFusionSettings,
                   *, steps: int = 10, sampler: str = "euler", seeds: Sequence[int] = (0,),
                   schedule: DiscreteSchedule | None = None, schedule_kind: str = "uniform",
                   condition: Condition | None = None, first_latent: torch.Tensor | None = None,
                   on_phase: Callable[[Phase, torch.Tensor], None] | None = None) -> list[torch.Tensor]:
    """Run phase 1 (or take `first_latent` as its result) and phases 2..S; returns each phase's latent."""
    schedule = schedule or DiscreteSchedule.stable_diffusion()
    sample = SAMPLERS[sampler]
    b, c, h, w = base_shape
    noise = seeded_noise(seeds)
    sigmas = schedule.get_sigmas(steps, schedule_kind)
    phases = plan_phases(h, w, settings.scale)

    def denoiser(runner: PhaseRunner | None):
        def model(x, sigma):
            sigma = float(sigma)
            t = schedule.sigma_to_t(sigma)
            x_in = x / (sigma ** 2 + 1) ** 0.5

            def call(xb, **kw):
                return predict(xb, torch.full((xb.shape[0],), t), **kw)
            if runner is None:
                eps = call(x_in, **(condition([]) if condition else {}))
            else:
                runner.mix(x, t, sigma=sigma)      # in place: the sampler continues from the mixed state
                eps = runner.predict(call, x_in, t, condition)
            return x - sigma * eps
        return model

    def step_noise(phase):
        counter = iter(range(1, 1 << 30))
        return lambda x: noise(tuple(x.shape), phase.index * 1000 + next(counter))

    if first_latent is None:
        x = noise((b, c, h, w), 1) * sigmas[0]
        first_latent = sample(denoiser(None), x, sigmas, noise=step_noise(phases[0]))
    results = [first_latent]
    if on_phase:
        on_phase(phases[0], first_latent)
    for phase in phases[1:]:
        z = upscale_latent(results[-1], phase.shape)
        n = noise(tuple(z.shape), phase.index)
        runner = PhaseRunner(phase, (h, w), settings, z, n, seed=seeds[0], num_timesteps=schedule.num_timesteps)
        ph_sigmas = phase_sigmas(sigmas, settings.phase_denoise)
        x = z + ph_sigmas[0] * n
        out = sample(denoiser(runner), x, ph_sigmas, noise=step_noise(phase))
        results.append(anchor(out, first_latent))
        if on_phase:
            on_phase(phase, results[-1])
    return results
