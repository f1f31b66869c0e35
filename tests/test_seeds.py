"""Seeded streams (seeds.py): every (seed, purpose) has its own, reproducible, and no two purposes or kinds of
stream share one."""
import itertools

import torch

from demofusion_ext import seeded_noise
from demofusion_ext.seeds import generator_seed, interaction_generator, jitter_rng, noise_generator

SHAPE = (1, 4, 6, 6)
# keys that arithmetic schemes confuse: seed * 1009 + phase, 1000 * phase + step, names joined without separator
PURPOSES = [("start", 1), ("start", 2), ("start", 3), ("start", 1011), ("step", 1, 2009), ("step", 2, 1009),
            ("step", 2, 9), ("step", 3, 9), ("step", 1, 21), ("step", 12, 1), ("step", 2, 0), ("step", 20),
            ("start", 2, 0), ("start",)]
SEEDS = [0, 1, 2, 1009, 2018]


def test_different_purposes_and_seeds_never_share_a_draw():
    draws = {(s, p): seeded_noise([s])(SHAPE, *p) for s in SEEDS for p in PURPOSES}
    keys = {generator_seed(s, *p) & 0xFFFFFFFF for s, p in draws}      # the bits torch's CPU generator keeps
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


def test_jitter_interaction_and_noise_streams_are_apart():
    """The same (seed, phase, evaluation) in each kind of stream gives unrelated draws."""
    for s, p, e in [(0, 2, 0), (1, 2, 5), (123, 3, 9), (2, 0, 2)]:
        streams = {"interaction": interaction_generator(s, p, e), "noise": noise_generator(s, "step", p, e),
                   "noise at start": noise_generator(s, "start", p)}
        draws = {name: torch.rand(8, generator=g) for name, g in streams.items()}
        for (a, x), (b, y) in itertools.combinations(draws.items(), 2):
            assert not torch.allclose(x, y), (a, b)
        jitter = [jitter_rng(*key).random() for key in [(s, p, e), (s, p, e + 1), (s, p + 1, e), (s + 1, p, e)]]
        assert len(set(jitter)) == 4
    seeds = {generator_seed("demofusion-window-interaction", s, p, e) & 0xFFFFFFFF
             for s in range(3) for p in range(2, 4) for e in range(20)}
    assert len(seeds) == 3 * 2 * 20
