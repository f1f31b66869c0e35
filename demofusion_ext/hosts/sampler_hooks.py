"""The hooks into a phase's sampler, the same on every host: a fresh sampler per phase started from the enlarged
latent, and the skip residual mixed into the sampler's own state before the first evaluation of each step.

The skip residual sits on an instance attribute of `sampler.model_wrap_cfg.forward` (the CFG denoiser): each call
of it is one evaluation, and every model call inside shares one set of views (`PhaseRunner.evaluation`). Step
boundaries come from the sampler's `callback_state` (docs/HOSTS.md, section 1). Each hook is set with `restored`,
which puts back exactly what was there before, in `finally`.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from modules import rng, sd_samplers, shared

from ..phase_runner import PhaseRunner
from ..settings import DemoFusionSettings
from ..phases import relay_steps
from ..speed import relays
from ..skip_residual import noised_vp
from ..view_batch import ViewBatch

TIMESTEP_SAMPLERS = {"DDIM", "DDIM CFG++", "PLMS"}


def interrupted() -> bool:
    return bool(shared.state.interrupted or shared.state.skipped)


@dataclass
class PhaseSampling:
    """One phase's sampler and the runner that its hooks call, made the same way on both hosts."""
    sampler: object
    runner: PhaseRunner
    z: torch.Tensor
    noise: torch.Tensor
    timestep: bool            # a timestep (DDIM-like) sampler: its state is VP, its "sigma" a timestep
    strength: float           # the phase's denoising strength (1 = from pure noise)
    relay: bool = False       # run the last `strength` share of the steps (Fast), not all steps over a shorter schedule


def new_phase(p, phase, window, settings: DemoFusionSettings, start: torch.Tensor, view_batch: ViewBatch,
              strength: float) -> PhaseSampling:
    """The phase's starting latent (the previous phase enlarged, or the picture), the image's own noise at the phase
    size, and a fresh sampler for the phase."""
    z = start
    p.rng = rng.ImageRNG(z.shape[1:], p.seeds, subseeds=p.subseeds, subseed_strength=p.subseed_strength,
                         seed_resize_from_h=0, seed_resize_from_w=0)
    noise = p.rng.next()
    sampler = sd_samplers.create_sampler(p.sampler_name, p.sd_model)
    p.sampler = sampler
    runner = PhaseRunner(phase, window, settings, z, noise, seed=int(p.seeds[0]), view_batch=view_batch)
    timestep = sampler.config.name in TIMESTEP_SAMPLERS if sampler.config else False
    return PhaseSampling(sampler, runner, z, noise, timestep, strength, relays(settings))


def sample_phase(p, ps: PhaseSampling, c, uc) -> torch.Tensor:
    """Run the phase's sampler from the noised enlarged latent, with the skip residual hooked in."""
    sampler, z, noise = ps.sampler, ps.z, ps.noise
    image_cond = p.txt2img_image_conditioning(z, width=z.shape[-1] * 8, height=z.shape[-2] * 8)
    # relayed: the strength whose WebUI img2img rule (int(strength x steps) + 1 steps) runs exactly relay_steps
    strength = (relay_steps(p.steps, ps.strength) - 0.5) / p.steps if ps.relay else ps.strength
    with skip_residual_hook(p, sampler, ps.runner, ps.timestep), restored(p, "denoising_strength", strength), \
            restored(shared.opts.data, "img2img_extra_noise", 0.0, item=True):
        if ps.timestep and ps.strength >= 1:
            # sample_img2img of the timestep samplers starts one step late; start from x_T ourselves
            t_first = int(sampler.get_timesteps(p, p.steps)[-1])
            x = noised_vp(z, noise, p.sd_model.alphas_cumprod[t_first])
            out = sampler.sample(p, x, c, uc, image_conditioning=image_cond)
        elif ps.relay:            # the WebUI's own img2img step rule, whatever the user's "exact steps" option says
            with restored(shared.opts.data, "img2img_fix_steps", False, item=True):
                out = sampler.sample_img2img(p, z, noise, c, uc, steps=None, image_conditioning=image_cond)
        else:
            out = sampler.sample_img2img(p, z, noise, c, uc, steps=p.steps, image_conditioning=image_cond)
    p.sampler = None
    return out


_MISSING = object()


@contextlib.contextmanager
def restored(obj, name, value, item=False):
    """Set an instance attribute (or dict item) for the block, then put back exactly what the instance had:
    its own earlier value (another extension's hook), or nothing, so the class attribute shows through again."""
    own = obj if item else vars(obj)
    old = own.get(name, _MISSING)
    if item:
        obj[name] = value
    else:
        setattr(obj, name, value)
    try:
        yield
    finally:
        if old is _MISSING:
            own.pop(name, None)
        elif item:
            obj[name] = old
        else:
            setattr(obj, name, old)


@contextlib.contextmanager
def skip_residual_hook(p, sampler, runner: PhaseRunner, timestep: bool):
    """Mix the sampler's own state in place before the first evaluation of each step."""
    model = p.sd_model
    cfg = sampler.model_wrap_cfg
    cfg_forward = cfg.forward
    callback = sampler.callback_state
    second_order = bool(sampler.config and sampler.config.options.get("second_order"))
    # the first call of the run starts a step; after each step callback, a second-order
    # sampler makes one more evaluation of the same step before the next step starts
    boundary = {"first": True, "skip": 0}

    def step_callback(d):
        boundary["first"], boundary["skip"] = True, 1 if second_order else 0
        return callback(d)

    def evaluating_forward(x, sigma, *args, **kwargs):
        if boundary["first"]:
            if boundary["skip"]:
                boundary["skip"] -= 1
            else:
                boundary["first"] = False
                if timestep:
                    t = int(sigma[0])
                    runner.mix(x, t, alpha_bar=model.alphas_cumprod[t])
                else:
                    runner.mix(x, float(sampler.model_wrap.sigma_to_t(sigma[:1])[0]), sigma=sigma.view(-1, 1, 1, 1))
        with runner.evaluation():
            return cfg_forward(x, sigma, *args, **kwargs)

    with restored(cfg, "forward", evaluating_forward), restored(sampler, "callback_state", step_callback):
        yield
