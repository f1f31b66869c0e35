"""Device-cleanness without a GPU: every tensor the engine makes follows its inputs' device.

The default device is set to "meta" while inputs and models sit explicitly on the CPU: a tensor the engine creates
without naming a device lands on meta, and then an op mixing it with CPU tensors fails or the result is on meta.
On a GPU host the same mistake puts a tensor on the CPU next to CUDA latents.
"""
import pytest
import torch

from demofusion_ext import (DemoFusionSettings, PhaseRunner, anchor, fused_prediction, gaussian_blur, jitter_rng,
                            make_layout, plan_phases, run_demofusion, tiled_decode, tiled_encode)
from demofusion_ext.controlnet_hints import phase_hint, view_hints
from tiny_models import sd1_predict

CPU = torch.device("cpu")


@pytest.fixture
def meta_default():
    before = torch.get_default_device()
    torch.set_default_device("meta")
    assert torch.empty(1).device.type == "meta"
    try:
        yield
    finally:
        torch.set_default_device(None if before == CPU else before)


def on_cpu(*tensors):
    return all(t.device == CPU and bool(torch.isfinite(t).all()) for t in tensors)


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator("cpu").manual_seed(seed), device="cpu")


def test_run_demofusion(unet_sd1, text, meta_default):
    # a fractional scale: padded global views, two phases >= 2; euler_a draws step noise
    out = run_demofusion(sd1_predict(unet_sd1, text), (1, 4, 8, 8), DemoFusionSettings(scale=2.5), steps=2,
                         sampler="euler_a", seeds=[1], device="cpu")
    assert [tuple(r.shape[-2:]) for r in out] == [(8, 8), (16, 16), (20, 20)] and on_cpu(*out)
    # no device given: it follows the phase-1 latent
    given = run_demofusion(sd1_predict(unet_sd1, text), (1, 4, 8, 8), DemoFusionSettings(scale=2), steps=1,
                           sampler="dpmpp_2m", seeds=[1], first_latent=out[0])
    assert on_cpu(*given)


def test_fused_prediction_with_condition_and_slope(unet_sd1, text, meta_default):
    x = randn(2, 4, 20, 20)
    layout = make_layout(20, 20, (8, 8), 0.5, 3, jitter_rng(0, 2, 0), multiple=8)

    def predict(v, ctx):
        return unet_sd1(v, torch.full((v.shape[0],), 500.0, device=v.device), encoder_hidden_states=ctx).sample
    out = fused_prediction(predict, x, layout, c2=0.4, blur_sigma=0.8, view_batch_size=5,
                           condition=lambda views: {"ctx": text.repeat(2 * len(views), 1, 1)},
                           input_slope=torch.tensor([1.0, -0.5], device="cpu"))
    assert out.shape == x.shape and on_cpu(out)


def test_blur_mix_anchor(meta_default):
    x, z, n = randn(1, 4, 16, 16, seed=1), randn(1, 4, 16, 16, seed=2), randn(1, 4, 16, 16, seed=3)
    assert on_cpu(gaussian_blur(x, 3, 0.8), gaussian_blur(torch.ones(1, 4, 6, 6, device="cpu"), 2, 0.8))
    runner = PhaseRunner(plan_phases(8, 8, 2)[1], (8, 8), DemoFusionSettings(), z, n)
    assert on_cpu(runner.mix(x.clone(), 400.0, sigma=2.0), runner.mix(x.clone(), 400.0, alpha_bar=0.3))
    assert on_cpu(anchor(x * 3, randn(1, 4, 8, 8, seed=4)))


def test_tiled_decode_and_encode(vae, meta_default):
    latent = randn(1, 4, 12, 10, seed=5)
    image = tiled_decode(lambda q: vae.decode(q).sample, latent, tile=8, overlap=4)
    assert image.shape == (1, 3, 96, 80) and on_cpu(image)
    back = tiled_encode(lambda im: vae.encode(im).latent_dist.mean, image.clamp(-1, 1), tile=64, overlap=32)
    assert back.shape == latent.shape and on_cpu(back)


def test_view_hints(meta_default):
    full = phase_hint(torch.rand(1, 3, 64, 64, device="cpu"), (20, 20))
    layout = make_layout(20, 20, (8, 8), 0.5, 3, jitter_rng(0, 2, 0), multiple=8)
    hints = view_hints(full, list(layout.local[:2]) + list(layout.dilated[:2]), rows=2)
    assert hints.shape == (8, 3, 64, 64) and on_cpu(full, hints)
