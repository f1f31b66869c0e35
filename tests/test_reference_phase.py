"""Whole phases >= 2 against a reference written here, in plain torch, straight from docs/ALGORITHM.md sections 1-3.

The reference shares only the random draws with the engine (phase-1 latent, each phase's start noise, the jitter
stream) and the schedule's sigmas and sigma -> t. Everything else is restated below: the skip residual mixed into
the Euler state before the model input is formed, the window loop (jittered or not), the blur and its
renormalisation, the dilated sub-grids, the cosine weights, the bicubic upscale between phases and the anchoring to
phase 1. All in float64, so the comparison is tight: 1e-9, where the two agree to 3e-15 (a float32 round trip
anywhere, e.g. in the upscale between phases, shows as 1e-8 .. 1e-7).
"""
import copy
import math

import pytest
import torch
import torch.nn.functional as F

from demofusion_ext import DemoFusionSettings, DiscreteSchedule, jitter_rng, run_demofusion, seeded_noise

T = 1000
SETTINGS = dict(cosine_scale_1=3.0, cosine_scale_2=1.0, cosine_scale_3=2.0, sigma=0.8, stride=0.5,
                view_batch_size=16)     # distinct alphas, so a weight computed from the wrong one shows


@pytest.fixture(scope="module")
def model64(unet_sd1, text):
    unet = copy.deepcopy(unet_sd1).double()
    ctx = text.double()

    def predict(x, t):
        return unet(x, t, encoder_hidden_states=ctx.repeat(x.shape[0], 1, 1)).sample
    return predict


# ---- the reference ---------------------------------------------------------------------------------------------

def starts(length, window, stride):
    """Window starts every `stride`, the last one flush with the end (docs/ALGORITHM.md section 3, local paths)."""
    out, s = [], 0
    while True:
        if s + window >= length:
            out.append(max(0, length - window))
            return out
        out.append(s)
        s += stride


def move(rng, start, window, length, j):
    """Random jitter of one window along one axis: [-J, J], one-sided (outwards) at the borders."""
    first, last = start == 0, start + window >= length
    if first and last:
        return 0
    if first:
        return rng.randint(-j, 0)
    if last:
        return rng.randint(0, j)
    return rng.randint(-j, j)


def ref_local(model, x, t, window, rng):
    H, W = x.shape[-2:]
    stride = [int(w * 0.5 + 0.5) for w in window]
    J = [(w - s) // 4 for w, s in zip(window, stride)] if rng else [0, 0]
    xp = F.pad(x, (J[1], J[1], J[0], J[0]))
    value, count = torch.zeros_like(xp), torch.zeros_like(xp)
    for r in starts(H, window[0], stride[0]):
        for c in starts(W, window[1], stride[1]):
            dr = move(rng, r, window[0], H, J[0]) if rng else 0
            dc = move(rng, c, window[1], W, J[1]) if rng else 0
            r0, c0 = r + dr + J[0], c + dc + J[1]
            sl = (..., slice(r0, r0 + window[0]), slice(c0, c0 + window[1]))
            value[sl] += model(xp[sl], torch.full((x.shape[0],), t, dtype=x.dtype))
            count[sl] += 1
    return (value / count)[..., J[0]:J[0] + H, J[1]:J[1] + W]


def ref_global(model, x, t, d, sigma_g):
    H, W = x.shape[-2:]
    ph, pw = (-H) % d, (-W) % d
    xp = F.pad(x, (pw, 0, ph, 0))
    k = 2 * d - 1
    g = torch.exp(-(torch.arange(k, dtype=x.dtype) - (k - 1) / 2) ** 2 / (2 * sigma_g ** 2))
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :]).expand(x.shape[1], 1, k, k)
    blurred = F.conv2d(xp, kernel, padding=k // 2, groups=x.shape[1])
    blurred = (blurred - blurred.mean()) / blurred.std() * xp.std() + xp.mean()
    out = torch.zeros_like(xp)
    for i in range(d):
        for j in range(d):
            out[..., i::d, j::d] = model(blurred[..., i::d, j::d], torch.full((x.shape[0],), t, dtype=x.dtype))
    return out[..., ph:, pw:]


def ref_phase(model, prev, first, k, shape, d, window, sigmas, schedule, seed, jitter, s):
    z = F.interpolate(prev, size=shape, mode="bicubic", align_corners=False)
    n = seeded_noise([seed], dtype=torch.float64)(tuple(z.shape), "start", k)
    x = z + float(sigmas[0]) * n
    for i in range(len(sigmas) - 1):
        sig, sig_next = float(sigmas[i]), float(sigmas[i + 1])
        t = schedule.sigma_to_t(sig)
        cf = 0.5 * (1 + math.cos(math.pi * (T - t) / T))
        c1, c2 = cf ** s["cosine_scale_1"], cf ** s["cosine_scale_2"]
        sigma_g = s["sigma"] * (0.99 * cf ** s["cosine_scale_3"] + 0.01)
        x = (1 - c1) * x + c1 * (z + sig * n)                   # the sampler's own state, before the input
        x_in = x / math.sqrt(sig ** 2 + 1)
        rng = jitter_rng(seed, k, i) if jitter else None         # one evaluation per Euler step
        eps = (1 - c2) * ref_local(model, x_in, t, window, rng)
        if c2 > 0:
            eps = eps + c2 * ref_global(model, x_in, t, d, sigma_g)
        x = x + eps * (sig_next - sig)      # Euler: d = (x - denoised) / sigma with denoised = x - sigma eps
    return (x - x.mean()) / x.std() * first.std() + first.mean()     # anchored to phase 1


# ---- the comparison --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("base,scale,jitter,phases", [
    ((8, 8), 2, False, [(2, (16, 16), 2)]),
    ((8, 8), 2, True, [(2, (16, 16), 2)]),
    # 7x7 windows (stride 4); a 17x17 last phase at dilation 2: one row/column of top/left padding
    ((7, 7), 2.4, False, [(2, (14, 14), 2), (3, (17, 17), 2)]),
])
def test_phases_match_the_reference(model64, base, scale, jitter, phases):
    seed, steps = 21, 3      # t = 999, 499.5, 0: the middle step mixes and fuses partially
    first = torch.randn(1, 4, *base, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    settings = DemoFusionSettings(scale=scale, random_jitter=jitter, **SETTINGS)
    schedule = DiscreteSchedule.stable_diffusion()
    got = run_demofusion(model64, (1, 4, *base), settings, steps=steps, seeds=[seed], first_latent=first)
    assert [tuple(r.shape[-2:]) for r in got[1:]] == [p[1] for p in phases]

    sigmas = schedule.get_sigmas(steps, "uniform")
    prev = first
    for (k, shape, d), out in zip(phases, got[1:]):
        with torch.no_grad():
            want = ref_phase(model64, prev, first, k, shape, d, base, sigmas, schedule, seed, jitter, SETTINGS)
        assert out.dtype == torch.float64
        torch.testing.assert_close(out, want, rtol=1e-9, atol=1e-9)     # measured: 3e-15
        prev = want
