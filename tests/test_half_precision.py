"""float16 and bfloat16 on the CPU: every engine step stays finite, keeps the caller's dtype, and stays close to
the float32 result. torch 2.13's CPU kernels run the tiny diffusers UNet and VAE in both half types, so the real
components are converted (no stand-in decoder is needed).

Errors are measured as max |half - float32| / max |float32|. Figures measured on this CPU (tolerances ~3x above):
    float16:  fused prediction 1.7e-3, tiled decode 4.4e-3, whole run 1.4e-3, blur 4.8e-4, mix 5.4e-4
    bfloat16: fused prediction 1.3e-2, tiled decode 3.8e-2, whole run 1.4e-2, blur 2.6e-3, mix 5.4e-3
(The half-precision VAE is slow on the CPU, ~20x float32: its image is kept small.)
"""
import copy

import pytest
import torch

from demofusion_ext import (DemoFusionSettings, PhaseRunner, anchor, fused_prediction, gaussian_blur, jitter_rng,
                            make_layout, plan_phases, run_demofusion, tiled_decode)
from tiny_models import sd1_predict

HALF = [torch.float16, torch.bfloat16]
# tolerances on max |half - float32| / max |float32|
TOL = {torch.float16: dict(fused=5e-3, decode=1.5e-2, run=5e-3, blur=2e-3, ulp=2 ** -10),
       torch.bfloat16: dict(fused=4e-2, decode=1e-1, run=4e-2, blur=1e-2, ulp=2 ** -7)}


def rel_err(got, want):
    return float((got.double() - want.double()).abs().max() / want.double().abs().max())


def finite(t, dtype):
    return t.dtype == dtype and bool(torch.isfinite(t).all())


@pytest.fixture(scope="module")
def unets(unet_sd1):
    return {dt: copy.deepcopy(unet_sd1).to(dt) for dt in HALF}


def model_at(unet, text, t=500.0):
    def predict(v):
        return unet(v, torch.full((v.shape[0],), t, dtype=v.dtype),
                    encoder_hidden_states=text.to(v.dtype).repeat(v.shape[0], 1, 1)).sample
    return predict


@pytest.mark.parametrize("dtype", HALF)
def test_fused_prediction(unet_sd1, unets, text, dtype):
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(2))
    layout = make_layout(16, 16, (8, 8), 0.5, 2, jitter_rng(0, 2, 0))
    got = fused_prediction(model_at(unets[dtype], text), x.to(dtype), layout, c2=0.4, blur_sigma=0.8)
    want = fused_prediction(model_at(unet_sd1, text), x, layout, c2=0.4, blur_sigma=0.8)
    assert finite(got, dtype) and rel_err(got, want) <= TOL[dtype]["fused"]


@pytest.mark.parametrize("dtype", HALF)
def test_skip_residual_mix(dtype):
    g = torch.Generator().manual_seed(4)
    z, n, x = (torch.randn(1, 4, 16, 16, generator=g) for _ in range(3))
    runner = PhaseRunner(plan_phases(8, 8, 2)[1], (8, 8), DemoFusionSettings(), z, n)
    # k-diffusion state at an intermediate timestep, in place
    state = x.to(dtype)
    c1 = runner.weights(400.0)[0]
    want = (1 - c1) * state.double() + c1 * (z.to(dtype).double() + 2.0 * n.to(dtype).double())
    assert runner.mix(state, 400.0, sigma=2.0) is state
    assert finite(state, dtype) and rel_err(state, want) <= 4 * TOL[dtype]["ulp"]
    # timestep (VP) state near t = 0, where 1 - alpha_bar is below the half type's resolution at 1: at c1 = 1 the
    # state becomes sqrt(a) z + sqrt(1 - a) n; with z = 0 only the small noise term is left to get right
    a = {torch.float16: 0.9999, torch.bfloat16: 0.99}[dtype]
    runner = PhaseRunner(plan_phases(8, 8, 2)[1], (8, 8), DemoFusionSettings(), torch.zeros_like(z), n)
    state = x.to(dtype)
    runner.mix(state, 1000.0, alpha_bar=a)          # t = T: cf = 1, c1 = 1
    assert finite(state, dtype) and rel_err(state, (1 - a) ** 0.5 * n.to(dtype).double()) <= 2 * TOL[dtype]["ulp"]


@pytest.mark.parametrize("dtype", HALF)
def test_gaussian_blur_including_a_flat_latent(dtype):
    x = torch.randn(2, 4, 16, 12, generator=torch.Generator().manual_seed(5)) * 3 + 1
    got = gaussian_blur(x.to(dtype), 3, 0.8)
    assert finite(got, dtype) and rel_err(got, gaussian_blur(x, 3, 0.8)) <= TOL[dtype]["blur"]
    flat = torch.full((1, 4, 16, 16), 0.75, dtype=dtype)       # std 0: the renormalisation must not divide by it
    assert torch.equal(gaussian_blur(flat, 2, 0.8), flat)
    almost = flat.clone()
    almost[..., 0, 0] += torch.finfo(dtype).eps           # one cell a few ulps off: a tiny std
    assert finite(gaussian_blur(almost, 2, 0.8), dtype)


@pytest.mark.parametrize("dtype", HALF)
def test_anchor(dtype):
    g = torch.Generator().manual_seed(6)
    ref = torch.stack([torch.randn(4, 8, 8, generator=g) * 2 + 1, torch.randn(4, 8, 8, generator=g) * 0.5 - 1])
    latent = torch.randn(2, 4, 16, 16, generator=g) * 40 + 30          # large values: half sums would overflow
    out = anchor(latent.to(dtype), ref.to(dtype))
    assert finite(out, dtype)
    for i in range(2):
        assert abs(float(out[i].double().mean() - ref[i].mean())) <= 0.02
        assert abs(float(out[i].double().std() / ref[i].std()) - 1) <= 4 * TOL[dtype]["ulp"]
    flat = torch.full((2, 4, 16, 16), -3.0, dtype=dtype)
    out = anchor(flat, ref.to(dtype))                    # a flat latent: all at the reference's mean
    assert finite(out, dtype)
    torch.testing.assert_close(out[:, 0, 0, 0].double(), ref.to(dtype).double().mean((1, 2, 3)),
                               atol=TOL[dtype]["ulp"] * 2, rtol=0)


@pytest.mark.parametrize("dtype", HALF)
def test_tiled_decode(vae, dtype):
    latent = torch.randn(1, 4, 12, 10, generator=torch.Generator().manual_seed(0))     # 2 x 2 tiles
    half_vae = copy.deepcopy(vae).to(dtype)
    got = tiled_decode(lambda z: half_vae.decode(z).sample, latent.to(dtype), tile=8, overlap=4)
    want = tiled_decode(lambda z: vae.decode(z).sample, latent, tile=8, overlap=4)
    assert got.shape == want.shape == (1, 3, 96, 80)
    assert finite(got, dtype) and rel_err(got, want) <= TOL[dtype]["decode"]


@pytest.fixture(scope="module")
def run_float32(unet_sd1, text):
    return run_demofusion(sd1_predict(unet_sd1, text), (1, 4, 8, 8), DemoFusionSettings(scale=2), steps=4, seeds=[3])


@pytest.mark.parametrize("dtype", HALF)
def test_whole_run(unets, text, run_float32, dtype):
    want = run_float32
    got = run_demofusion(sd1_predict(unets[dtype], text.to(dtype)), (1, 4, 8, 8), DemoFusionSettings(scale=2), steps=4,
                         seeds=[3], dtype=dtype)
    assert [tuple(r.shape) for r in got] == [(1, 4, 8, 8), (1, 4, 16, 16)]
    for g, w in zip(got, want):
        assert finite(g, dtype) and rel_err(g, w) <= TOL[dtype]["run"]
