"""A host-agnostic DemoFusion run: every phase, with any raw-prediction callable and a k-diffusion sampler.

`predict(x_in, t, **cond)` is the model's raw eps prediction for model input x_in (x scaled by
1/sqrt(sigma^2 + 1)) at timesteps t [rows]; it is all the driver knows of the model. Every tensor follows the
device and dtype of the latent (`device`/`dtype`, or `first_latent`'s); noise is drawn on the CPU from
per-image generators, so a seed gives the same picture on any device.

The sampler is one of SAMPLERS' names or any function in k-diffusion's form (samplers.py), e.g. one of
`k_diffusion.sampling`'s: the skip residual mixes its state at the first model call of each step (step_starts.py),
which the driver tells from the sampler's callbacks and `calls_per_step`.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from ..fusion import Condition
from ..phase_runner import PhaseRunner
from ..phases import Phase, plan_phases, relay_steps
from ..seeds import noise_generator
from ..settings import DemoFusionSettings
from ..skip_residual import anchor
from ..step_starts import StepStarts
from ..upscale import upscale_latent
from ..view_batch import ViewBatch
from .noise_schedule import DiscreteSchedule
from .sampler_interface import exact_sigma, on_device, sampler_function, takes_noise_sampler


def seeded_noise(seeds: Sequence[int], device=None, dtype=torch.float32) -> Callable[..., torch.Tensor]:
    """noise(shape, *purpose): one CPU generator per image seed and purpose (seeds.py), moved to `device` in `dtype`."""
    def noise(shape, *purpose) -> torch.Tensor:
        draws = [torch.randn(shape[1:], generator=noise_generator(s, *purpose), device="cpu") for s in seeds]
        return torch.stack(draws).to(device=device, dtype=dtype)
    return noise


def phase_sigmas(sigmas: torch.Tensor, strength: float) -> torch.Tensor:
    """The tail of the schedule that a phase of denoising `strength` runs (1 = all of it): the relay's steps."""
    return sigmas[len(sigmas) - 1 - relay_steps(len(sigmas) - 1, strength):]


def run_demofusion(predict: Callable, base_shape: tuple[int, int, int, int], settings: DemoFusionSettings,
                   *, steps: int = 10, sampler: str | Callable = "euler", calls_per_step: int = 1,
                   seeds: Sequence[int] = (0,), schedule: DiscreteSchedule | None = None,
                   schedule_kind: str = "uniform",
                   condition: Condition | None = None, first_latent: torch.Tensor | None = None,
                   on_phase: Callable[[Phase, torch.Tensor], None] | None = None,
                   device=None, dtype=None) -> list[torch.Tensor]:
    """Run phase 1 (or take `first_latent` as its result) and phases 2..S; returns each phase's latent.

    `sampler`: "euler", "euler_a", "dpmpp_2m", or a function with k-diffusion's sampler signature;
    `calls_per_step`: the model calls one step of it makes (2 for Heun, DPM2, DPM++ 2S, DPM++ SDE)."""
    schedule = schedule or DiscreteSchedule.stable_diffusion()
    sample = sampler_function(sampler)
    b, c, h, w = base_shape
    if first_latent is not None:
        device, dtype = first_latent.device, first_latent.dtype
    device, dtype = torch.device(device or "cpu"), dtype or torch.float32
    noise = seeded_noise(seeds, device, dtype)
    sigmas = schedule.get_sigmas(steps, schedule_kind)      # CPU float64: the exact values, whatever the latent's dtype
    phases = plan_phases(h, w, settings.scale)
    view_batch = ViewBatch(settings.view_batch_size)         # shrunk once on out-of-memory, for the whole run

    def call(xb, t, **kw):
        # the model's own dtype in, timesteps in float32 at least: float16 rounds t to 0.5 above 512
        xb = xb.to(dtype)
        wide = torch.promote_types(xb.dtype, torch.float32)
        return predict(xb, torch.full((xb.shape[0],), t, device=xb.device, dtype=wide), **kw)

    def sample_phase(phase: Phase, x: torch.Tensor, ph_sigmas: torch.Tensor, runner: PhaseRunner | None):
        starts = StepStarts(calls_per_step) if runner is not None else None

        def model(x, sigma, **extra_args):
            sigma = exact_sigma(sigma, ph_sigmas)
            t = schedule.sigma_to_t(sigma)
            if runner is None:
                eps = call(x / (sigma ** 2 + 1) ** 0.5, t, **(condition([]) if condition else {}))
            else:
                if starts.model_call():
                    runner.mix(x, t, sigma=sigma)      # in place, before the input is formed: the step starts here
                with runner.evaluation():
                    eps = runner.predict(lambda xb, **kw: call(xb, t, **kw), x / (sigma ** 2 + 1) ** 0.5, t, condition)
            return x - sigma * eps

        extra = {}
        if takes_noise_sampler(sample):
            draws = iter(range(1 << 30))
            extra["noise_sampler"] = lambda *_: noise(tuple(x.shape), "step", phase.index, next(draws))
        out = sample(model, x, on_device(ph_sigmas, x.device), extra_args={},
                     callback=starts.callback if starts else None, disable=True, **extra)
        return out.to(dtype)

    if first_latent is None:
        x = noise((b, c, h, w), "start", 1) * float(sigmas[0])
        first_latent = sample_phase(phases[0], x, sigmas, None)
    results = [first_latent]
    if on_phase:
        on_phase(phases[0], first_latent)
    for phase in phases[1:]:
        z = upscale_latent(results[-1], phase.shape)
        n = noise(tuple(z.shape), "start", phase.index)
        runner = PhaseRunner(phase, (h, w), settings, z, n, seed=seeds[0], num_timesteps=schedule.num_timesteps,
                             view_batch=view_batch)
        ph_sigmas = phase_sigmas(sigmas, settings.phase_denoise)
        out = sample_phase(phase, z + float(ph_sigmas[0]) * n, ph_sigmas, runner)
        results.append(anchor(out, first_latent))
        if on_phase:
            on_phase(phase, results[-1])
    return results
