"""The driver's own samplers, in k-diffusion's calling convention, so `run_demofusion` takes k-diffusion's as well.

`sample_xxx(model, x, sigmas, extra_args=None, callback=None, disable=None, ...)` calls `model(x, sigma, **extra_args)`
with one sigma per row (`sigmas[i] * s_in`) and gets the denoised x0 back; `callback` receives {'x', 'i', 'sigma',
'sigma_hat', 'denoised'} once per step, after the step's first model call and before x moves; ancestral steps
draw their fresh noise from `noise_sampler(sigma, sigma_next)`. `disable` (k-diffusion's progress bar) is unused.
Euler on the k-diffusion ODE is deterministic DDIM in other coordinates (Karras et al. 2022, section 3).
"""
from __future__ import annotations

import torch


def _denoise(model, x, sigmas, i, extra_args, callback):
    """Step i's model call and its callback, as every k-diffusion sampler makes them."""
    sigma = sigmas[i]
    denoised = model(x, sigma * x.new_ones([x.shape[0]]), **(extra_args or {}))
    if callback is not None:
        callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma, "denoised": denoised})
    return denoised


def sample_euler(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """Euler method (Karras et al. 2022, Algorithm 2 without churn) == deterministic DDIM."""
    for i in range(len(sigmas) - 1):
        denoised = _denoise(model, x, sigmas, i, extra_args, callback)
        d = (x - denoised) / sigmas[i]
        x = x + d * (sigmas[i + 1] - sigmas[i])
    return x


def sample_euler_ancestral(model, x, sigmas, extra_args=None, callback=None, disable=None, eta=1.0, s_noise=1.0,
                           noise_sampler=None):
    """Ancestral Euler: a deterministic step down to sigma_down, then fresh noise up to the next sigma (eta = 1: all
    of the step's variance). Without `noise_sampler` the noise comes from the global torch RNG."""
    if noise_sampler is None:
        noise_sampler = lambda sigma, sigma_next, like=x: torch.randn_like(like)   # noqa: E731
    for i in range(len(sigmas) - 1):
        denoised = _denoise(model, x, sigmas, i, extra_args, callback)
        s, s_next = sigmas[i], sigmas[i + 1]
        sigma_up = min(s_next, eta * (s_next ** 2 * (s ** 2 - s_next ** 2) / s ** 2) ** 0.5)
        sigma_down = (s_next ** 2 - sigma_up ** 2) ** 0.5
        x = x + (x - denoised) / s * (sigma_down - s)
        if s_next > 0:
            x = x + noise_sampler(s, s_next) * s_noise * sigma_up
    return x


def sample_dpmpp_2m(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2): a multistep sampler that keeps the last x0."""
    old = None
    for i in range(len(sigmas) - 1):
        denoised = _denoise(model, x, sigmas, i, extra_args, callback)
        s, s_next = sigmas[i], sigmas[i + 1]
        if s_next == 0:
            x = denoised
        else:
            t, t_next = -s.log(), -s_next.log()
            h = t_next - t
            d = denoised
            if old is not None:
                h_last = t - (-sigmas[i - 1].log())
                r = h_last / h
                d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old
            x = (s_next / s) * x - torch.expm1(-h) * d
        old = denoised
    return x


SAMPLERS = {"euler": sample_euler, "euler_a": sample_euler_ancestral, "dpmpp_2m": sample_dpmpp_2m}
