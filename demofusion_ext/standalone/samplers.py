"""Small k-diffusion samplers for the host-agnostic driver. `model(x, sigma)` returns the denoised x0.

Each is a plain function of (model, x, sigmas); `callback(i, x, denoised)` follows each step. Euler on
the k-diffusion ODE is deterministic DDIM in other coordinates (Karras et al. 2022, section 3).
"""
from __future__ import annotations

import torch


def sample_euler(model, x, sigmas, callback=None, noise=None):
    """Euler method (Karras et al. 2022, Algorithm 2 without churn) == deterministic DDIM."""
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        d = (x - denoised) / sigmas[i]
        x = x + d * (sigmas[i + 1] - sigmas[i])
        if callback:
            callback(i, x, denoised)
    return x


def sample_euler_ancestral(model, x, sigmas, callback=None, noise=None):
    """Ancestral Euler (eta = 1). `noise(shape_like)` supplies fresh noise, e.g. from the image seeds."""
    noise = noise or torch.randn_like
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
        s, s_next = sigmas[i], sigmas[i + 1]
        sigma_up = (s_next ** 2 * (s ** 2 - s_next ** 2) / s ** 2) ** 0.5
        sigma_down = (s_next ** 2 - sigma_up ** 2) ** 0.5
        x = x + (x - denoised) / s * (sigma_down - s)
        if s_next > 0:
            x = x + noise(x) * sigma_up
        if callback:
            callback(i, x, denoised)
    return x


def sample_dpmpp_2m(model, x, sigmas, callback=None, noise=None):
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2): a multistep sampler that keeps the last x0."""
    old = None
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i])
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
        if callback:
            callback(i, x, denoised)
    return x


SAMPLERS = {"euler": sample_euler, "euler_a": sample_euler_ancestral, "dpmpp_2m": sample_dpmpp_2m}
