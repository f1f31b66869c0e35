import torch
import pytest

from demofusion_ext import (dilation_for, global_views, jitter_rng, local_views, make_layout, model_evaluations,
                            plan_phases, window_indices)
from demofusion_ext.views import View


def test_phase_plan_integer_non_square_and_fractional():
    assert [(p.height, p.width, p.dilation) for p in plan_phases(16, 12, 3)] == [(16, 12, 1), (32, 24, 2), (48, 36, 3)]
    plan = plan_phases(16, 12, 2.5)
    assert [(p.scale, p.height, p.width, p.dilation) for p in plan] == [(1, 16, 12, 1), (2, 32, 24, 2), (2.5, 40, 30, 3)]
    assert [p.dilation for p in plan_phases(10, 10, 1.5)] == [1, 2]
    assert plan_phases(13, 7, 2.25)[-1].shape == (29, 16)     # rounded to whole latent cells
    assert dilation_for(3.4) == 3 and dilation_for(1.2) == 2
    with pytest.raises(ValueError, match="scale"):
        plan_phases(8, 8, 0.5)


def test_cost_model_matches_algorithm_md():
    # (2k-1)^2 local + k^2 global per step of phase k, summed over phases: 14, 48, 113
    for scale, total in [(2, 14), (3, 48), (4, 113)]:
        evals = model_evaluations(plan_phases(16, 16, scale), (16, 16), 0.5)
        assert sum(l + g for l, g in evals) == total


def _coverage(views, height, width):
    cover = torch.zeros(height, width, dtype=torch.int32)
    for v in views:
        rows = torch.arange(v.top, v.top + v.height * v.step, v.step)
        cols = torch.arange(v.left, v.left + v.width * v.step, v.step)
        rows, cols = rows[(rows >= 0) & (rows < height)], cols[(cols >= 0) & (cols < width)]
        cover[rows[:, None], cols[None, :]] += 1
    return cover


@pytest.mark.parametrize("size,window,stride", [((32, 32), (16, 16), 0.5), ((40, 30), (16, 12), 0.5),
                                               ((37, 51), (16, 16), 0.25), ((24, 24), (16, 16), 1.0)])
@pytest.mark.parametrize("seed", [None, 0, 1, 2, 3])
def test_every_latent_cell_is_covered_by_a_local_view(size, window, stride, seed):
    rng = jitter_rng(seed, 2, 0) if seed is not None else None
    views, (jh, jw) = local_views(*size, window, stride, rng)
    assert (_coverage(views, *size) >= 1).all()
    for v in views:       # jittered windows stay inside the padded latent
        assert -jh <= v.top and v.top + v.height <= size[0] + jh
        assert -jw <= v.left and v.left + v.width <= size[1] + jw
        assert (v.height, v.width) == window


@pytest.mark.parametrize("size,d", [((32, 32), 2), ((40, 30), 3), ((37, 51), 4), ((16, 16), 1)])
def test_global_views_cover_the_padded_latent_exactly_once(size, d):
    views, (ph, pw) = global_views(*size, d)
    assert len(views) == d * d and (size[0] + ph) % d == 0 and (size[1] + pw) % d == 0
    cover = _coverage([View(v.kind, v.top + ph, v.left + pw, v.height, v.width, v.step) for v in views],
                      size[0] + ph, size[1] + pw)
    assert (cover == 1).all()


def test_jitter_is_reproducible_from_a_seed_and_varies_with_it():
    a = make_layout(40, 40, (16, 16), 0.5, 3, jitter_rng(7, 2, 5))
    b = make_layout(40, 40, (16, 16), 0.5, 3, jitter_rng(7, 2, 5))
    c = make_layout(40, 40, (16, 16), 0.5, 3, jitter_rng(8, 2, 5))
    assert a == b and a.local != c.local


def test_view_extract_hint_blocks_follow_latent_cells():
    lat = torch.arange(6 * 6, dtype=torch.float32).view(1, 1, 6, 6)
    hint = lat.repeat_interleave(8, -2).repeat_interleave(8, -1)     # 8x8 pixel block per latent cell
    for v in [View("global", -1, 0, 2, 2, 3), View("global", 1, 2, 2, 2, 3), View("local", -2, 3, 4, 4)]:
        small = v.extract(lat)
        big = v.extract(hint, cell=8)
        assert big.shape[-2:] == (small.shape[-2] * 8, small.shape[-1] * 8)
        assert torch.equal(big[..., ::8, ::8], small)


def test_global_views_can_round_their_size_up_for_the_model():
    views, (ph, pw) = global_views(40, 30, 3, multiple=8)
    assert all((v.height, v.width) == (16, 16) for v in views) and (ph, pw) == (8, 18)
    cover = _coverage([View(v.kind, v.top + ph, v.left + pw, v.height, v.width, v.step) for v in views], 48, 48)
    assert (cover == 1).all()


def test_every_view_knows_its_place_even_where_two_windows_coincide():
    """Per-view prompts keep one text per window: a window's number must survive jitter that lands two windows on
    the same cells (stride 8, window 16 over 26 cells: starts 0, 8, 10, jitter up to 2)."""
    seed = next(s for s in range(100)
                if len({(v.top, v.left) for v in local_views(26, 26, (16, 16), 0.5, jitter_rng(s, 2, 0))[0]}) < 9)
    layout = make_layout(26, 26, (16, 16), 0.5, 3, jitter_rng(seed, 2, 0))
    places = [(v.top, v.left) for v in layout.local]
    assert len(set(places)) < len(places)                       # the case: equal geometry, different windows
    assert window_indices(layout.local) == list(range(9))
    assert window_indices(layout.dilated) == [None] * 9 and [v.index for v in layout.dilated] == list(range(9))
    mixed = [layout.dilated[4], layout.local[5], layout.local[6]]
    assert window_indices(mixed) == [None, 5, 6]
