"""End to end: every phase on tiny real UNets through the host-agnostic driver."""
import torch
import pytest

from demofusion_ext import CallCounter, DemoFusionSettings, make_layout, model_evaluations, plan_phases, run_demofusion
from demofusion_ext.view_conditioning import CropColumns, split_cond
from tiny_models import sd1_predict

FAST = dict(view_batch_size=16)


@pytest.mark.parametrize("sampler", ["euler", "euler_a", "dpmpp_2m"])
def test_three_phases_have_planned_shapes_and_are_reproducible(unet_sd1, text, sampler):
    settings = DemoFusionSettings(scale=3, **FAST)
    run = lambda: run_demofusion(sd1_predict(unet_sd1, text), (1, 4, 8, 8), settings, steps=4, sampler=sampler, seeds=[11])
    a, b = run(), run()
    assert [tuple(r.shape[-2:]) for r in a] == [(8, 8), (16, 16), (24, 24)]
    assert all(torch.isfinite(r).all() for r in a)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    other = run_demofusion(sd1_predict(unet_sd1, text), (1, 4, 8, 8), settings, steps=4, sampler=sampler, seeds=[12])
    assert not torch.equal(a[-1], other[-1])


def test_fractional_scale_and_non_square_base(unet_sd1, text):
    out = run_demofusion(sd1_predict(unet_sd1, text), (1, 4, 8, 12), DemoFusionSettings(scale=2.5), steps=3,
                         seeds=[1], schedule_kind="karras")
    assert [tuple(r.shape[-2:]) for r in out] == [(8, 12), (16, 24), (20, 30)]
    assert torch.isfinite(out[-1]).all()


def test_scale_one_is_plain_sampling(unet_sd1, text):
    counted = CallCounter(sd1_predict(unet_sd1, text))
    out = run_demofusion(counted, (1, 4, 8, 8), DemoFusionSettings(scale=1), steps=5, seeds=[3])
    assert len(out) == 1 and (counted.calls, counted.rows) == (5, 5)


def test_evaluations_equal_the_cost_model(unet_sd1, text):
    """No wasted evaluation: every step evaluates the views of the layout (exact for steps where 0 < c2 < 1)."""
    counted = CallCounter(sd1_predict(unet_sd1, text))
    steps = 4
    run_demofusion(counted, (1, 4, 8, 8), DemoFusionSettings(scale=2, view_batch_size=64), steps=steps, seeds=[0])
    per_step = model_evaluations(plan_phases(8, 8, 2), (8, 8), 0.5)
    # the last step is at t = 0, where c2 = 0: its global views are skipped
    assert counted.rows == steps * sum(l + g for l, g in per_step) - per_step[1][1]


def test_a_batch_of_two_gives_independent_images(unet_sd1, text):
    predict = sd1_predict(unet_sd1, text)
    settings = DemoFusionSettings(scale=2)
    both = run_demofusion(predict, (2, 4, 8, 8), settings, steps=3, seeds=[5, 6])[-1]
    alone = run_demofusion(predict, (1, 4, 8, 8), settings, steps=3, seeds=[5])[-1]
    torch.testing.assert_close(both[:1], alone, atol=1e-4, rtol=1e-4)
    assert (both[0] - both[1]).abs().mean() > 0.1


def test_sdxl_style_unet_with_per_view_crop_coordinates(unet_sdxl, text):
    """Each local view's rows carry its own top-left (pixels) in SDXL's crop micro-conditioning, set by the engine's
    split_cond/CropColumns (here on raw time_ids: one column per number); global views keep the prompt's (0, 0)."""
    pooled = torch.randn(1, 32, generator=torch.Generator().manual_seed(2))
    prompt_ids = torch.tensor([[64.0, 64.0, 0.0, 0.0, 64.0, 64.0]])      # original size, crop top/left, target size
    crop = CropColumns(lambda coords: coords, 1)
    calls, pending = [], []

    def condition(views):
        pending[:] = views
        if not views:                                                    # phase 1: the prompt's own
            return {"time_ids": prompt_ids}
        return split_cond({"time_ids": prompt_ids}, views, 1, (16, 16), crop, vector_key="time_ids")

    def predict(x, t, time_ids):
        calls.append((list(pending), time_ids.clone(), x.clone()))
        n = x.shape[0]
        return unet_sdxl(x, t, encoder_hidden_states=text.repeat(n, 1, 1),
                         added_cond_kwargs={"text_embeds": pooled.repeat(n, 1), "time_ids": time_ids}).sample

    steps = 3
    out = run_demofusion(predict, (1, 4, 8, 8), DemoFusionSettings(scale=2, random_jitter=False), steps=steps,
                         seeds=[4], condition=condition)
    assert tuple(out[-1].shape) == (1, 4, 16, 16) and torch.isfinite(out[-1]).all()
    layout = make_layout(16, 16, (8, 8), 0.5, 2, rng=None, multiple=8)
    fused = [c for c in calls if c[0]]
    assert len(fused) == steps and all(torch.equal(ids, prompt_ids) for views, ids, _ in calls if not views)
    for views, ids, x in fused:
        # every view of the layout once per evaluation (the last step, at c2 = 0, has no global views)
        with_global = any(v.kind == "global" for v in views)
        assert sorted(views, key=repr) == sorted(layout.local + (layout.dilated if with_global else ()), key=repr)
        want = [[64.0, 64.0, v.top * 8.0, v.left * 8.0, 64.0, 64.0] if v.kind == "local" else prompt_ids[0].tolist()
                for v in views]
        assert ids.tolist() == want
        # and row i of the call is view i: overlapping windows show the same latent cells
        local = [(v, x[i]) for i, v in enumerate(views) if v.kind == "local"]
        for a, xa in local:
            for b, xb in local:
                r0, r1 = max(a.top, b.top), min(a.top, b.top) + 8
                c0, c1 = max(a.left, b.left), min(a.left, b.left) + 8
                if r0 < r1 and c0 < c1:
                    assert torch.equal(xa[:, r0 - a.top:r1 - a.top, c0 - a.left:c1 - a.left],
                                       xb[:, r0 - b.top:r1 - b.top, c0 - b.left:c1 - b.left])
    assert {(v.top, v.left) for v in layout.local} == {(r, c) for r in (0, 4, 8) for c in (0, 4, 8)}
