import torch

from demofusion_ext import DemoFusionSettings, PhaseRunner, anchor, cosine_factor, noised_vp, plan_phases, skip_residual


def test_c1_one_gives_exactly_z_plus_sigma_n_in_place():
    g = torch.Generator().manual_seed(0)
    x, z, n = (torch.randn(2, 4, 8, 8, generator=g) for _ in range(3))
    sigma = 3.7
    ref = x
    out = skip_residual(x, z + sigma * n, 1.0, inplace=True)
    assert out is ref and torch.equal(x, z + sigma * n)


def test_c1_zero_leaves_state_and_between_is_the_lerp():
    x, z = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8)
    assert torch.equal(skip_residual(x, z, 0.0), x)
    torch.testing.assert_close(skip_residual(x, z, 0.25), 0.75 * x + 0.25 * z)


def test_runner_mix_uses_the_timestep_cosine():
    phase = plan_phases(8, 8, 2)[1]
    z, n = torch.randn(1, 4, 16, 16), torch.randn(1, 4, 16, 16)
    runner = PhaseRunner(phase, (8, 8), DemoFusionSettings(cosine_scale_1=3), z, n)
    x = torch.randn(1, 4, 16, 16)
    t, sigma = 400.0, 2.0
    c1 = cosine_factor(t) ** 3
    want = (1 - c1) * x + c1 * (z + sigma * n)
    torch.testing.assert_close(runner.mix(x.clone(), t, sigma=sigma), want)
    a = 0.3     # timestep samplers: VP state
    torch.testing.assert_close(runner.mix(x.clone(), t, alpha_bar=a), (1 - c1) * x + c1 * noised_vp(z, n, a))
    assert cosine_factor(1000) == 1.0 and cosine_factor(0) == 0.0 and abs(cosine_factor(500) - 0.5) < 1e-12


def test_anchor_matches_each_images_statistics():
    ref = torch.stack([torch.randn(4, 8, 8) * 2 + 1, torch.randn(4, 8, 8) * 0.5 - 1])
    out = anchor(torch.randn(2, 4, 16, 16) * 7 + 3, ref)
    for i in range(2):
        torch.testing.assert_close(out[i].mean(), ref[i].mean(), atol=1e-5, rtol=0)
        torch.testing.assert_close(out[i].std(), ref[i].std(), atol=1e-5, rtol=1e-5)
