"""Window interaction (AccDiffusion): the global views swap their values per (channel, cell) before the model and
their predictions back after it. Pointwise models cannot tell; models that mix cells or views can."""
import pytest
import torch
import torch.nn.functional as F

from demofusion_ext import DemoFusionSettings, PhaseRunner, fused_prediction, jitter_rng, make_layout, plan_phases
from demofusion_ext.seeds import interaction_generator
from demofusion_ext.anti_repetition.window_interaction import cell_permutations, shuffle_views, unshuffle_views

CPU = torch.device("cpu")


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator("cpu").manual_seed(seed), device="cpu")


def conv_model(v):
    """Mixes neighbouring cells and channels, row by row: sees which values a slot's neighbours came from."""
    w = randn(4, 4, 3, 3, seed=11).to(v.dtype) / 6
    return F.conv2d(v, w, padding=1)


def pointwise(v):
    return 2 * v + 1


def perms(seed=1, phase=2, evaluation=0, n=4, shape=(4, 16, 16)):
    return cell_permutations(n, *shape, generator=interaction_generator(seed, phase, evaluation))


# the permutations themselves

def test_unshuffle_inverts_shuffle_and_slots_hold_each_value_once():
    stack = randn(9, 3, 4, 5, 6)
    perm = cell_permutations(9, 4, 5, 6, generator=interaction_generator(0, 3, 7))
    assert perm.shape == (9, 4, 5, 6) and perm.dtype == torch.long
    assert torch.equal(perm.sort(0).values, torch.arange(9).view(9, 1, 1, 1).expand(9, 4, 5, 6))
    shuffled = shuffle_views(stack, perm)
    assert not torch.equal(shuffled, stack)
    assert torch.equal(shuffled.sort(0).values, stack.sort(0).values)        # per cell: the same values, moved
    assert torch.equal(unshuffle_views(shuffled, perm), stack)
    assert torch.equal(shuffle_views(unshuffle_views(stack, perm), perm), stack)
    # slot r holds view perm[r]'s value
    r, c, i, j = 2, 1, 3, 4
    assert torch.equal(shuffled[r, :, c, i, j], stack[perm[r, c, i, j], :, c, i, j])


def test_every_row_of_a_view_shares_the_permutation():
    n, rows = 4, 3
    stack = (10 * torch.arange(n).view(n, 1, 1, 1, 1) + torch.arange(rows).view(1, rows, 1, 1, 1)).expand(n, rows, 2, 3, 3)
    shuffled = shuffle_views(stack.float(), perms(n=n, shape=(2, 3, 3)))
    source_view = (shuffled - torch.arange(rows).view(1, rows, 1, 1, 1)) / 10
    assert torch.equal(source_view, source_view[:, :1].expand_as(source_view))


def test_draws_are_seeded_and_per_evaluation():
    assert torch.equal(perms(), perms())
    assert not torch.equal(perms(evaluation=0), perms(evaluation=1))
    assert not torch.equal(perms(phase=2), perms(phase=3))
    assert not torch.equal(perms(seed=1), perms(seed=2))


def test_the_option_leaves_the_jitter_stream_alone():
    """(That the interaction and jitter streams are apart: test_seeds.py.)"""
    # the option draws nothing from the jitter stream: the windows stay where they were
    phase = plan_phases(16, 16, 2)[1]
    x = randn(1, 4, 32, 32)
    on, off = (PhaseRunner(phase, (16, 16), DemoFusionSettings(window_interaction=w), x, x, seed=5) for w in (True, False))
    for _ in range(3):
        with on.evaluation() as a, off.evaluation() as b:
            on.predict(conv_model, x, 500.0), off.predict(conv_model, x, 500.0)
        assert a.layout == b.layout


# the fused prediction

@pytest.mark.parametrize("size,d,multiple", [((32, 32), 2, 1), ((40, 36), 3, 8), ((34, 30), 2, 8)])
@pytest.mark.parametrize("c2", [0.4, 1.0])
@pytest.mark.parametrize("slope", [None, 1.0])
def test_a_pointwise_model_cannot_tell(size, d, multiple, c2, slope):
    """A consistent per-cell permutation, unshuffled after the model, changes nothing for a pointwise model,
    padding cells included; with input_slope the correction uses each view's own unshuffled input."""
    x = randn(2, 4, *size, seed=3)
    layout = make_layout(*size, (16, 16), 0.5, d, jitter_rng(0, 2, 0), multiple=multiple)
    kw = dict(c2=c2, blur_sigma=0.8, view_batch_size=5, input_slope=slope)
    plain = fused_prediction(pointwise, x, layout, **kw)
    mixed = fused_prediction(pointwise, x, layout, interaction=interaction_generator(0, 2, 0), **kw)
    torch.testing.assert_close(mixed, plain, atol=1e-6, rtol=1e-6)


def test_the_model_sees_the_shuffled_views():
    x = randn(2, 4, 40, 36, seed=4)
    layout = make_layout(40, 36, (16, 16), 0.5, 3, None, multiple=8)
    seen_plain, seen_mixed = [], []
    fused_prediction(lambda v: seen_plain.append(v) or v, x, layout, c2=1.0, blur_sigma=0.8, view_batch_size=64)
    fused_prediction(lambda v: seen_mixed.append(v) or v, x, layout, c2=1.0, blur_sigma=0.8, view_batch_size=64,
                     interaction=interaction_generator(7, 2, 3))
    plain = seen_plain[0].unflatten(0, (9, 2))                      # view-major: [view, rows, C, gh, gw]
    mixed = seen_mixed[0].unflatten(0, (9, 2))
    perm = cell_permutations(9, *plain.shape[2:], generator=interaction_generator(7, 2, 3))
    assert torch.equal(mixed, shuffle_views(plain, perm)) and not torch.equal(mixed, plain)


def test_each_view_takes_back_the_prediction_made_for_its_value():
    """A model that adds 100 x its batch position: view v gets, at each cell, 100 x the slot that held its value."""
    x = randn(1, 4, 32, 32, seed=5)
    layout = make_layout(32, 32, (16, 16), 0.5, 2, None)            # no padding: view (i, j) is x[..., i::2, j::2]
    by_slot = lambda v: v + 100 * torch.arange(v.shape[0], dtype=v.dtype).view(-1, 1, 1, 1)
    kw = dict(c2=1.0, blur_sigma=0.8, view_batch_size=64)
    base = fused_prediction(lambda v: v, x, layout, **kw)
    plain = fused_prediction(by_slot, x, layout, **kw) - base
    mixed = fused_prediction(by_slot, x, layout, interaction=interaction_generator(2, 2, 1), **kw) - base
    slot_of = perms(seed=2, phase=2, evaluation=1).argsort(0)      # slot_of[v, c, i, j]: the slot holding v's value
    for v, (i, j) in enumerate((i, j) for i in range(2) for j in range(2)):
        torch.testing.assert_close(plain[0, :, i::2, j::2], torch.full((4, 16, 16), 100.0 * v), atol=1e-3, rtol=0)
        torch.testing.assert_close(mixed[0, :, i::2, j::2], 100.0 * slot_of[v].float(), atol=1e-3, rtol=0)


def test_a_model_that_mixes_cells_sees_the_exchange():
    x = randn(2, 4, 32, 32, seed=6)
    layout = make_layout(32, 32, (16, 16), 0.5, 2, jitter_rng(0, 2, 0))
    kw = dict(c2=0.5, blur_sigma=0.8, view_batch_size=5)
    plain = fused_prediction(conv_model, x, layout, **kw)
    mixed = fused_prediction(conv_model, x, layout, interaction=interaction_generator(0, 2, 0), **kw)
    again = fused_prediction(conv_model, x, layout, interaction=interaction_generator(0, 2, 0), **kw)
    other = fused_prediction(conv_model, x, layout, interaction=interaction_generator(0, 2, 1), **kw)
    assert not torch.allclose(mixed, plain, atol=1e-3) and torch.equal(mixed, again)
    assert not torch.allclose(mixed, other, atol=1e-3)


def test_cond_and_uncond_rows_share_the_permutation():
    """Rows a and 2a: blurred 2a is exactly twice blurred a, so every slot's two rows stay a factor 2 apart only if
    both rows of a view moved the same way."""
    a = randn(1, 4, 40, 36, seed=7)
    layout = make_layout(40, 36, (16, 16), 0.5, 3, None, multiple=8)
    seen = []
    fused_prediction(lambda v: seen.append(v) or v, torch.cat([a, 2 * a]), layout, c2=1.0, blur_sigma=0.8,
                     view_batch_size=64, interaction=interaction_generator(0, 2, 0))
    slots = seen[0].unflatten(0, (9, 2))
    torch.testing.assert_close(slots[:, 1], 2 * slots[:, 0], atol=1e-6, rtol=1e-6)


def test_without_global_views_nothing_changes():
    x = randn(1, 4, 32, 32, seed=8)
    layout = make_layout(32, 32, (16, 16), 0.5, 2, None)
    kw = dict(c2=0.0, blur_sigma=0.8, view_batch_size=5)
    assert torch.equal(fused_prediction(conv_model, x, layout, interaction=interaction_generator(0, 2, 0), **kw),
                       fused_prediction(conv_model, x, layout, **kw))


def test_independent_of_the_global_rng():
    x = randn(1, 4, 32, 32, seed=9)
    layout = make_layout(32, 32, (16, 16), 0.5, 2, None)
    outs = []
    for s in (0, 1):
        torch.manual_seed(s)
        state = torch.get_rng_state()
        outs.append(fused_prediction(conv_model, x, layout, c2=0.5, blur_sigma=0.8,
                                     interaction=interaction_generator(3, 2, 0)))
        assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(*outs)


def test_tensors_follow_the_input_device():
    """With the default device set to meta, the permutations still land on the inputs' (CPU) device."""
    x = randn(1, 4, 34, 30, seed=10)
    layout = make_layout(34, 30, (16, 16), 0.5, 2, None, multiple=8)
    before = torch.get_default_device()
    torch.set_default_device("meta")
    try:
        out = fused_prediction(conv_model, x, layout, c2=0.5, blur_sigma=0.8, interaction=interaction_generator(0, 2, 0))
    finally:
        torch.set_default_device(None if before == CPU else before)
    assert out.device == CPU and bool(torch.isfinite(out).all())


# the phase runner

def test_phase_runner_off_is_the_plain_path():
    phase = plan_phases(16, 16, 2)[1]
    x = randn(2, 4, 32, 32, seed=12)
    runner = PhaseRunner(phase, (16, 16), DemoFusionSettings(), x, x, seed=4)
    with runner.evaluation() as ev:
        got = runner.predict(conv_model, x, 500.0, input_slope=1.0)
    _, c2, bs = runner.weights(500.0)
    want = fused_prediction(conv_model, x, ev.layout, c2=c2, blur_sigma=bs, view_batch_size=16, input_slope=1.0)
    none = fused_prediction(conv_model, x, ev.layout, c2=c2, blur_sigma=bs, view_batch_size=16, input_slope=1.0,
                            interaction=None)
    assert torch.equal(got, want) and torch.equal(none, want)


def test_phase_runner_draws_per_evaluation_and_shares_one_draw_across_split_calls():
    """The host may send one evaluation's cond and uncond rows in separate calls: inside one evaluation() they
    see the same permutations (those of evaluation index evaluations - 1); the next evaluation draws new ones."""
    phase = plan_phases(16, 16, 2)[1]
    x = randn(2, 4, 32, 32, seed=13)
    settings = DemoFusionSettings(window_interaction=True)
    whole_runner = PhaseRunner(phase, (16, 16), settings, x, x, seed=4)
    with whole_runner.evaluation() as ev:
        whole = whole_runner.predict(conv_model, x, 500.0)
    _, c2, bs = whole_runner.weights(500.0)
    want = fused_prediction(conv_model, x, ev.layout, c2=c2, blur_sigma=bs,
                            interaction=interaction_generator(4, phase.index, 0))
    assert torch.equal(whole, want)
    off = PhaseRunner(phase, (16, 16), DemoFusionSettings(), x, x, seed=4).predict(conv_model, x, 500.0)
    assert not torch.allclose(whole, off, atol=1e-3)

    runner = PhaseRunner(phase, (16, 16), settings, x, x, seed=4)
    with runner.evaluation():
        halves = [runner.predict(conv_model, x[i:i + 1], 500.0) for i in range(2)]
    torch.testing.assert_close(torch.cat(halves), whole, atol=1e-6, rtol=1e-6)
    with runner.evaluation() as ev:
        again = runner.predict(conv_model, x, 500.0)
    assert runner.evaluations == 2 and ev.index == 1
    torch.testing.assert_close(again, fused_prediction(conv_model, x, ev.layout, c2=c2, blur_sigma=bs,
                                                       interaction=interaction_generator(4, phase.index, 1)))
