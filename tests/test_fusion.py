"""The fused prediction against a reference written here from docs/ALGORITHM.md section 3, on a tiny real UNet."""
import math

import torch
import torch.nn.functional as F
import pytest

from demofusion_ext import (CallCounter, DemoFusionSettings, PhaseRunner, fused_prediction, jitter_rng, make_layout,
                            plan_phases, window_indices)


@pytest.fixture(scope="module")
def model(unet_sd1, text):
    def predict(x):
        return unet_sd1(x, torch.full((x.shape[0],), 500.0), encoder_hidden_states=text.repeat(x.shape[0], 1, 1)).sample
    return predict


def ref_windows(height, width, win, stride):
    def starts(n, w, s):
        count = 1 if n <= w else math.ceil((n - w) / s) + 1
        return [min(i * s, n - w) for i in range(count)]
    return [(r, c) for r in starts(height, win[0], stride[0]) for c in starts(width, win[1], stride[1])]


def ref_local(model, x, win, stride):
    value, count = torch.zeros_like(x), torch.zeros_like(x)
    for r, c in ref_windows(x.shape[2], x.shape[3], win, stride):
        value[..., r:r + win[0], c:c + win[1]] += model(x[..., r:r + win[0], c:c + win[1]])
        count[..., r:r + win[0], c:c + win[1]] += 1
    return value / count


def ref_global(model, x, d, sigma):
    ph, pw = (d - x.shape[2] % d) % d, (d - x.shape[3] % d) % d
    xp = F.pad(x, (pw, 0, ph, 0))
    k = 2 * d - 1
    coords = torch.arange(k, dtype=torch.float32) - (k - 1) / 2
    g = torch.exp(-coords ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :])[None, None].repeat(x.shape[1], 1, 1, 1)
    blurred = F.conv2d(xp, kernel, padding=k // 2, groups=x.shape[1])
    blurred = (blurred - blurred.mean()) / blurred.std() * xp.std() + xp.mean()
    out = torch.zeros_like(xp)
    for i in range(d):
        for j in range(d):
            out[..., i::d, j::d] = model(blurred[..., i::d, j::d])
    return out[..., ph:, pw:]


@pytest.mark.parametrize("size,d", [((32, 32), 2), ((32, 24), 2), ((40, 36), 3)])
def test_c2_zero_is_the_window_average(model, size, d):
    x = torch.randn(1, 4, *size, generator=torch.Generator().manual_seed(3))
    win = (16, 12) if size[1] == 24 else (16, 16)
    layout = make_layout(*size, win, 0.5, d, rng=None)
    got = fused_prediction(lambda v: model(v), x, layout, c2=0.0, blur_sigma=0.8, view_batch_size=3)
    want = ref_local(model, x, win, (win[0] // 2, win[1] // 2))
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("size,d,sigma", [((32, 32), 2, 0.8), ((40, 36), 3, 1.0), ((34, 34), 2, 0.5)])
def test_c2_one_is_the_dilated_computation(model, size, d, sigma):
    x = torch.randn(1, 4, *size, generator=torch.Generator().manual_seed(4))
    layout = make_layout(*size, (16, 16), 0.5, d, rng=None)
    got = fused_prediction(model, x, layout, c2=1.0, blur_sigma=sigma, view_batch_size=16)
    torch.testing.assert_close(got, ref_global(model, x, d, sigma), atol=2e-5, rtol=1e-4)


def test_intermediate_c2_blends_both_and_batches_mix_local_and_global(model):
    x = torch.randn(1, 4, 32, 32, generator=torch.Generator().manual_seed(5))
    layout = make_layout(32, 32, (16, 16), 0.5, 2, rng=None)
    counted = CallCounter(model)
    got = fused_prediction(counted, x, layout, c2=0.3, blur_sigma=0.8, view_batch_size=13)
    want = 0.7 * ref_local(model, x, (16, 16), (8, 8)) + 0.3 * ref_global(model, x, 2, 0.8)
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-4)
    assert (counted.calls, counted.rows) == (1, 9 + 4)          # one call: 9 windows and 4 sub-grids


def test_scale_one_is_one_plain_model_call(model):
    x = torch.randn(2, 4, 16, 16)
    phase = plan_phases(16, 16, 1)[0]
    runner = PhaseRunner(phase, (16, 16), DemoFusionSettings(), x, x)
    counted = CallCounter(model)
    assert torch.equal(runner.predict(counted, x, 900.0), model(x))
    assert (counted.calls, counted.rows) == (1, 2)


def test_batch_rows_are_independent(model):
    g = torch.Generator().manual_seed(6)
    a, b = torch.randn(1, 4, 40, 36, generator=g), torch.randn(1, 4, 40, 36, generator=g)
    layout = make_layout(40, 36, (16, 16), 0.5, 3, jitter_rng(1, 3, 0))
    both = fused_prediction(model, torch.cat([a, b]), layout, c2=0.4, blur_sigma=0.8, view_batch_size=5)
    alone = torch.cat([fused_prediction(model, t, layout, c2=0.4, blur_sigma=0.8, view_batch_size=5) for t in (a, b)])
    torch.testing.assert_close(both, alone, atol=2e-5, rtol=1e-4)
    assert not torch.allclose(both[0], both[1])


def test_condition_hook_sees_each_call_views(model):
    x = torch.randn(1, 4, 32, 32)
    layout = make_layout(32, 32, (16, 16), 0.5, 2, jitter_rng(0, 2, 0))
    seen = []

    def predict(v, views):
        assert v.shape[0] == len(views)
        seen.extend(views)
        return model(v)
    fused_prediction(predict, x, layout, c2=0.5, blur_sigma=0.8, view_batch_size=4,
                     condition=lambda views: {"views": list(views)})
    assert sorted(seen, key=repr) == sorted(layout.local + layout.dilated, key=repr)


def test_v_prediction_fuses_as_eps(model):
    """With input_slope -sigma the global path means the same as fusing eps: v = (eps - sqrt(1-a) x) / sqrt(a)."""
    sigma = 1.7
    a = 1 / (1 + sigma ** 2)
    x = torch.randn(1, 4, 32, 32, generator=torch.Generator().manual_seed(8))
    layout = make_layout(32, 32, (16, 16), 0.5, 2, rng=None)
    eps = fused_prediction(model, x, layout, c2=0.6, blur_sigma=0.8)
    v_model = lambda v: (model(v) - math.sqrt(1 - a) * v) / math.sqrt(a)
    v = fused_prediction(v_model, x, layout, c2=0.6, blur_sigma=0.8, input_slope=-sigma)
    torch.testing.assert_close(v, (eps - math.sqrt(1 - a) * x) / math.sqrt(a), atol=1e-4, rtol=1e-4)


def test_x0_prediction_fuses_as_eps(model):
    """Forge's UNet wrapper returns x0 = x - sigma eps: with input_slope 1 that is the fused eps, as x0."""
    sigma = torch.tensor([2.5, 0.7])
    x = torch.randn(2, 4, 32, 32, generator=torch.Generator().manual_seed(9))
    layout = make_layout(32, 32, (16, 16), 0.5, 2, rng=None)
    eps = fused_prediction(model, x, layout, c2=0.6, blur_sigma=0.8)
    x0_model = lambda v: v - sigma.repeat(v.shape[0] // 2).view(-1, 1, 1, 1) * model(v)
    x0 = fused_prediction(x0_model, x, layout, c2=0.6, blur_sigma=0.8, input_slope=1.0)
    torch.testing.assert_close(x0, x - sigma.view(-1, 1, 1, 1) * eps, atol=1e-4, rtol=1e-4)


def test_an_evaluation_split_over_calls_keeps_one_layout(model):
    """A1111 (long prompts, Batch cond/uncond off) and Forge (free memory) may send one evaluation's cond and
    uncond rows in separate calls: inside one evaluation() they see the same jittered windows; the next
    evaluation draws new ones, even at the same sigma (Heun's second evaluation, Restart)."""
    phase = plan_phases(16, 16, 2)[1]
    x = torch.randn(2, 4, 32, 32, generator=torch.Generator().manual_seed(3))
    whole = PhaseRunner(phase, (16, 16), DemoFusionSettings(), x, x).predict(model, x, 500.0)
    runner = PhaseRunner(phase, (16, 16), DemoFusionSettings(), x, x)
    with runner.evaluation():
        halves = [runner.predict(model, x[i:i + 1], 500.0) for i in range(2)]
    torch.testing.assert_close(torch.cat(halves), whole)
    assert runner.evaluations == 1
    with runner.evaluation():
        again = [runner.predict(model, x[i:i + 1], 500.0) for i in range(2)]
    assert runner.evaluations == 2 and not torch.allclose(torch.cat(again), whole)
    for i in range(2):                                  # no block: one evaluation per call
        runner.predict(model, x[i:i + 1], 500.0)
    assert runner.evaluations == 4


def test_an_evaluation_is_drawn_by_its_block_and_numbered(model):
    """evaluation() draws the views of evaluation i (the jitter of (seed, phase, i)) and every call inside sees them,
    with each window's number; a plain phase has no views to draw."""
    phase = plan_phases(16, 16, 2)[1]
    x = torch.randn(1, 4, 32, 32, generator=torch.Generator().manual_seed(4))
    runner = PhaseRunner(phase, (16, 16), DemoFusionSettings(), x, x, seed=9)
    for i in range(3):
        seen = []
        with runner.evaluation() as ev:
            assert ev.index == i and runner.current is ev
            assert ev.layout == make_layout(32, 32, (16, 16), 0.5, 2, jitter_rng(9, 2, i), multiple=8)
            runner.predict(model, x, 500.0, condition=lambda views: seen.extend(views) or {})
        assert sorted(w for w in window_indices(seen) if w is not None) == list(range(9))
        assert all(v == ev.layout.local[v.index] for v in seen if v.kind == "local")
    assert runner.current is None and runner.evaluations == 3
    plain = PhaseRunner(plan_phases(16, 16, 2)[0], (16, 16), DemoFusionSettings(), x[..., :16, :16], x[..., :16, :16])
    with plain.evaluation() as ev:
        plain.predict(model, x[..., :16, :16], 500.0)
    assert ev is None and plain.evaluations == 0


def test_views_rounded_up_for_the_model_see_the_references_blur():
    """A fractional-scale phase rounds global views up to a multiple of 8 cells: the extra rows are zeros, and
    the blur and its renormalisation are the reference's, over the latent padded only to a multiple of d."""
    x = torch.randn(1, 4, 40, 38, generator=torch.Generator().manual_seed(6))
    d, sigma = 3, 0.9
    layout = make_layout(40, 38, (16, 16), 0.5, d, rng=None, multiple=8)
    assert layout.dilated_pad != ((-40) % d, (-38) % d)              # the case: more padding than the dilation needs
    seen = []
    fused_prediction(lambda v: seen.append(v) or v, x, layout, c2=1.0, blur_sigma=sigma, view_batch_size=64)
    views = seen[0]
    ph, pw = (-40) % d, (-38) % d
    xp = F.pad(x, (pw, 0, ph, 0))
    k = 2 * d - 1
    g = torch.exp(-(torch.arange(k, dtype=torch.float32) - (k - 1) / 2) ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    blurred = F.conv2d(xp, (g[:, None] * g[None, :])[None, None].repeat(4, 1, 1, 1), padding=k // 2, groups=4)
    blurred = (blurred - blurred.mean()) / blurred.std() * xp.std() + xp.mean()
    extra_h, extra_w = layout.dilated_pad[0] - ph, layout.dilated_pad[1] - pw        # multiples of d: whole view rows
    for n, (i, j) in enumerate((i, j) for i in range(d) for j in range(d)):
        v = views[n:n + 1]
        torch.testing.assert_close(v[..., extra_h // d:, extra_w // d:], blurred[..., i::d, j::d], atol=1e-5, rtol=1e-5)
        assert not v[..., :extra_h // d, :].any() and not v[..., :, :extra_w // d].any()
