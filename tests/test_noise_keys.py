"""Keyed noise draws: every (seed, purpose) has its own stream, reproducible, and no two purposes share one."""
import itertools

import torch

from demofusion_ext import seeded_noise
from demofusion_ext.standalone.driver import draw_key

SHAPE = (1, 4, 6, 6)
# keys that arithmetic schemes confuse: seed * 1009 + phase, 1000 * phase + step, names joined without separator
PURPOSES = [("start", 1), ("start", 2), ("start", 3), ("start", 1011), ("step", 1, 2009), ("step", 2, 1009),
            ("step", 2, 9), ("step", 3, 9), ("step", 1, 21), ("step", 12, 1), ("step", 2, 0), ("step", 20),
            ("start", 2, 0), ("start",)]
SEEDS = [0, 1, 2, 1009, 2018]


def test_different_purposes_and_seeds_never_share_a_draw():
    draws = {(s, p): seeded_noise([s])(SHAPE, *p) for s in SEEDS for p in PURPOSES}
    keys = {draw_key(s, *p) for s, p in draws}
    assert len(keys) == len(draws)
    for (a, x), (b, y) in itertools.combinations(draws.items(), 2):
        assert not torch.allclose(x, y), (a, b)


def test_the_same_key_is_reproducible_and_seed_s_differs_from_s_plus_1():
    for p in PURPOSES:
        assert torch.equal(seeded_noise([7])(SHAPE, *p), seeded_noise([7])(SHAPE, *p))
    for s in (0, 41):
        for phase in (2, 3):
            a, b = seeded_noise([s])(SHAPE, "start", phase), seeded_noise([s + 1])(SHAPE, "start", phase)
            assert (a - b).abs().mean() > 0.5          # independent draws, not a shifted copy
            assert not torch.allclose(seeded_noise([s])(SHAPE, "start", phase + 1), b)   # seed + 1 is not phase + 1


def test_a_batch_draws_each_image_from_its_own_seed():
    both = seeded_noise([3, 4], dtype=torch.float64)(SHAPE, "start", 2)
    assert both.shape == (2, *SHAPE[1:]) and both.dtype == torch.float64
    assert torch.equal(both[1:], seeded_noise([4], dtype=torch.float64)(SHAPE, "start", 2))
    assert torch.equal(both[:1].float(), seeded_noise([3])(SHAPE, "start", 2))
