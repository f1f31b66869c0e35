"""Fast's shortcuts (docs/ALGORITHM.md section 7) on the engine: the global-view cut-off, region-wise noise, the
relay's steps, and the Speed preset as the API and X/Y/Z plot apply it. Exact's images are pinned in
test_seed_outputs.py (captured before Fast existed)."""
import pytest
import torch

from demofusion_ext import CallCounter, DemoFusionSettings, PhaseRunner, plan_phases, run_demofusion
from demofusion_ext.global_cutoff import cut
from demofusion_ext.phases import relay_steps
from demofusion_ext.region_noise import add_region_noise, noise_scale
from demofusion_ext.script.arguments import infotext_items, parse_args, with_overrides
from demofusion_ext.script.plan_line import plan_counts, plan_summary
from demofusion_ext.speed import FAST_UPSCALER, PRESETS
from tiny_models import sd1_predict


def runner(cutoff, **kw):
    phase = plan_phases(8, 8, 2)[1]                     # 16x16 latent, 8x8 window: 9 windows + 4 dilated views
    z = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    return PhaseRunner(phase, (8, 8), DemoFusionSettings(global_cutoff=cutoff, random_jitter=False, **kw), z,
                       torch.zeros_like(z))


def views_at(unet, text, run, t):
    """(views evaluated, prediction) of one fused evaluation at model timestep t."""
    counted = CallCounter(sd1_predict(unet, text))
    x = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = run.predict(lambda xb, **kw: counted(xb, torch.full((xb.shape[0],), t)), x, t)
    return counted.rows, out


def test_the_cut_off_evaluates_no_global_view_where_c2_is_below_it(unet_sd1, text):
    run = runner(0.05)
    assert run.weights(100)[1] == 0 and views_at(unet_sd1, text, run, 100)[0] == 9       # c2(100) = 0.024
    assert views_at(unet_sd1, text, run, 200)[0] == 13                                    # c2(200) = 0.095
    assert run.weights(990)[1] == 1 and views_at(unet_sd1, text, run, 990)[0] == 4       # within 0.05 of 1
    # it follows the cosine scale: at 3, c2(300) = 0.206^3 < 0.05
    assert views_at(unet_sd1, text, runner(0.05, cosine_scale_2=3.0), 300)[0] == 9


def test_the_cut_off_is_exact_at_zero(unet_sd1, text):
    exact, zero = runner(0.0), runner(0.0)
    for t in (990, 500, 100):
        (n_a, a), (n_b, b) = views_at(unet_sd1, text, exact, t), views_at(unet_sd1, text, zero, t)
        assert n_a == n_b == 13 and torch.equal(a, b)
    assert cut(0.0001, 0) == 0.0001 and cut(0.9999, 0) == 0.9999 and cut(0.3, 0.05) == 0.3


def flat_and_striped(height=64, width=128):
    """Left half flat grey, right half vertical stripes two pixels wide."""
    pixels = torch.full((1, height, width, 3), 128, dtype=torch.uint8)
    stripes = (torch.arange(width // 2) // 2 % 2 * 255).to(torch.uint8)
    pixels[:, :, width // 2:, :] = stripes.view(1, 1, -1, 1)
    return pixels


def test_the_noise_scale_follows_the_edges_of_the_picture():
    scale = noise_scale(flat_and_striped(), (8, 16), 1.2)
    assert scale.shape == (1, 1, 8, 16)
    # the last column's stripes meet the picture's edge, which is no edge
    assert scale[..., :7].max() == 0 and torch.allclose(scale[..., 9:15], torch.tensor(1.2))
    assert noise_scale(torch.zeros(1, 64, 64, 3, dtype=torch.uint8), (8, 8), 1.2).max() == 0     # flat: no noise


def test_region_noise_is_the_scaled_noise_of_each_images_seed():
    z, pixels = torch.zeros(2, 4, 8, 16), flat_and_striped()
    a = add_region_noise(z, pixels, 1.2, [5, 6], phase=2)
    assert torch.equal(a, add_region_noise(z, pixels, 1.2, [5, 6], phase=2))         # deterministic per seed
    assert not torch.equal(a[0], a[1]) and not torch.equal(a, add_region_noise(z, pixels, 1.2, [5, 6], phase=3))
    assert a[..., :7].abs().max() == 0 and 0.8 < a[..., 9:].std() < 1.6                # flat half clean


def test_a_relayed_phase_runs_the_last_share_of_the_steps():
    assert [relay_steps(20, s) for s in (1.0, 0.6, 0.3, 0.01)] == [20, 12, 6, 1]
    assert relay_steps(50, 0.6) == 30                   # LSRNA's 30 of 50


@pytest.mark.parametrize("scale", [2, 3])
def test_fast_counts_are_the_views_a_run_evaluates(unet_sd1, text, scale):
    fast = dict(phase_denoise=0.6, global_cutoff=0.05)
    counts = plan_counts(64, 64, 10, scale, 0.5, relay=True, **fast)
    per_phase = []
    counted = CallCounter(sd1_predict(unet_sd1, text))
    run_demofusion(counted, (1, 4, 8, 8), DemoFusionSettings(scale=scale, speed="Fast", **fast), steps=10, seeds=[0],
                   on_phase=lambda phase, latent: per_phase.append(counted.rows))
    assert [b - a for a, b in zip([0] + per_phase, per_phase)] == [c["views"] for c in counts]
    assert [c["steps"] for c in counts] == [10] + [6] * (scale - 1)


def test_fast_makes_at_least_40_percent_fewer_evaluations_at_3x_and_35_at_2x():
    for steps in (20, 30, 50):
        for scale, least in ((2, 0.35), (3, 0.40)):
            exact = sum(c["views"] for c in plan_counts(1024, 1024, steps, scale, 0.5))
            fast = sum(c["views"] for c in plan_counts(1024, 1024, steps, scale, 0.5, relay=True,
                                                        phase_denoise=0.6, global_cutoff=0.05))
            assert fast <= (1 - least) * exact, (steps, scale, fast, exact)
    line = plan_summary(128, 128, 20, 3, 0.5, relay=True, phase_denoise=0.6, global_cutoff=0.05)
    assert line.endswith("phase 2: 12 x 9 + 9 x 4 = 144, phase 3: 12 x 25 + 9 x 9 = 381; total 545. 402 fewer than "
                         "Exact (42%; the global-view cut-off counted on the Automatic schedule)."), line


def test_the_api_speed_fills_the_settings_the_request_does_not_name():
    _, s = parse_args([{"speed": "fast"}])
    assert s.speed == "Fast" and {k: getattr(s, k) for k in PRESETS["Fast"]} == PRESETS["Fast"]
    _, s = parse_args([{"speed": "Fast", "upscaler": "ESRGAN_4x", "phase_denoise": 0.8}])
    assert (s.upscaler, s.phase_denoise, s.region_noise, s.global_cutoff) == ("ESRGAN_4x", 0.8, 1.2, 0.05)
    assert parse_args([{"scale": 3}])[1] == DemoFusionSettings(scale=3)             # no speed: Exact's defaults


def test_an_xyz_speed_cell_sets_its_preset_over_the_ui_values():
    ui = [True, 2, 0.5, 16, 3.0, 1.0, 1.0, 0.8, True, 0.9, 1024, False, "Latent", False, 0.3, False, "Exact", 0.0, 0.3]
    _, fast = parse_args(with_overrides(ui, {"speed": "Fast"}))
    assert (fast.phase_denoise, fast.upscaler, fast.region_noise, fast.global_cutoff) == (0.6, FAST_UPSCALER, 1.2,
                                                                                          0.05)
    _, exact = parse_args(with_overrides(ui, {"speed": "Exact"}))
    assert (exact.phase_denoise, exact.upscaler, exact.region_noise, exact.global_cutoff) == (1.0, "Latent", 0, 0)
    ui[12] = "ESRGAN_4x"                                  # a pixel upscaler the user picked stays
    assert parse_args(with_overrides(ui, {"speed": "Fast"}))[1].upscaler == "ESRGAN_4x"
    # another axis of the same cell wins over the preset
    assert parse_args(with_overrides(ui, {"speed": "Fast", "phase_denoise": 0.7}))[1].phase_denoise == 0.7


def test_exact_writes_no_new_png_info_key_and_fast_writes_each_value():
    assert not any(k in infotext_items(DemoFusionSettings()) for k in ("DemoFusion speed", "DemoFusion region noise",
                                                                        "DemoFusion global cutoff"))
    fast = infotext_items(parse_args([{"speed": "fast"}])[1])
    assert (fast["DemoFusion speed"], fast["DemoFusion region noise"], fast["DemoFusion global cutoff"],
            fast["DemoFusion phase denoise"], fast["DemoFusion upscaler"]) == ("Fast", 1.2, 0.05, 0.6, "Lanczos")
