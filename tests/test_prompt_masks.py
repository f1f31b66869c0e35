"""The per-view prompts' keep rule (AccDiffusion) on synthetic maps: masks, opening, resize, coverage, word sets."""
import pytest
import torch

from demofusion_ext.anti_repetition.prompt_masks import (MapAccumulator, coverage, kept_words, masks_at, opening_iterations,
                                         window_word_sets, word_maps, word_masks)
from demofusion_ext.views import View, local_views


def blob(h, w, top, left, bh, bw, value=1.0):
    m = torch.zeros(h, w)
    m[top:top + bh, left:left + bw] = value
    return m


def test_opening_iterations_are_one_per_16_rows():
    assert [opening_iterations(h) for h in (8, 15, 16, 31, 32, 64)] == [0, 0, 1, 1, 2, 4]


def test_small_blob_vanishes_under_the_opening_and_a_large_one_survives_whole():
    small, large = blob(32, 32, 10, 10, 2, 2), blob(32, 32, 10, 10, 5, 5)     # n = 2 at 32 rows
    m = word_masks(torch.stack([small, large]))
    assert m.dtype == torch.bool and m.shape == (2, 32, 32)
    assert not m[0].any()                              # no speckle left, not even along the border
    assert torch.equal(m[1], large > 0)                # 5x5 erodes to one cell and grows back exactly


def test_iteration_count_follows_the_rows():
    # a 3x3 blob survives one erosion (16 rows) but not two (32 rows); a 2x2 blob survives none (8 rows)
    assert torch.equal(word_masks(blob(16, 16, 5, 5, 3, 3)[None])[0], blob(16, 16, 5, 5, 3, 3) > 0)
    assert not word_masks(blob(32, 32, 5, 5, 3, 3)[None]).any()
    assert not word_masks(blob(16, 16, 5, 5, 2, 2)[None]).any()
    assert torch.equal(word_masks(blob(8, 8, 3, 3, 2, 2)[None])[0], blob(8, 8, 3, 3, 2, 2) > 0)


def test_blob_at_the_border_survives_as_with_opencv_default_borders():
    # outside counts as True for the erosion: a 3x3 corner blob at n = 2 keeps its corner cell and grows back
    for top, left in ((0, 0), (0, 29), (29, 0), (29, 29)):
        b = blob(32, 32, top, left, 3, 3)
        assert torch.equal(word_masks(b[None])[0], b > 0), (top, left)
    # 3 rows x 5 columns: gone in the interior, kept whole along the top or left edge
    assert not word_masks(blob(32, 32, 10, 10, 3, 5)[None]).any()
    for b in (blob(32, 32, 0, 14, 3, 5), blob(32, 32, 14, 0, 5, 3)):
        assert torch.equal(word_masks(b[None])[0], b > 0)


def test_mask_is_strictly_above_the_words_own_mean():
    thirds = torch.tensor([0.0, 1.0, 2.0]).repeat_interleave(3).expand(8, 9)     # mean 1 exactly; n = 0
    assert torch.equal(word_masks(thirds[None])[0], thirds > 1)
    assert not word_masks(torch.full((1, 8, 8), 0.5)).any()                     # a flat map covers nothing
    # each word against its own mean: a weak word is not drowned by a strong one
    strong, weak = blob(8, 8, 0, 0, 4, 8, 10.0), blob(8, 8, 4, 0, 4, 8, 0.1)
    m = word_masks(torch.stack([strong, weak]))
    assert torch.equal(m[0], strong > 0) and torch.equal(m[1], weak > 0)


def test_non_square_maps_keep_rows_and_columns():
    b = blob(16, 24, 4, 0, 8, 8)                           # a blob at the left edge of a 16-row, 24-column map
    m = word_masks(b[None])[0]
    assert m.shape == (16, 24) and torch.equal(m, b > 0)
    # iterations come from the rows: 8 rows -> no opening (a 2x2 speck stays), 32 rows -> 2 (it goes)
    assert word_masks(blob(8, 32, 3, 20, 2, 2)[None]).sum() == 4
    assert not word_masks(blob(32, 8, 20, 3, 2, 2)[None]).any()
    big = masks_at(m[None], (32, 48))[0]
    assert big.shape == (32, 48) and big[:, :16].all(dim=1).sum() == 16 and not big[:, 16:].any()


def test_matches_opencv_opening_when_available():
    cv2 = pytest.importorskip("cv2")
    import numpy as np
    g = torch.Generator().manual_seed(0)
    kernel = np.ones((3, 3), np.uint8)
    for h, w in ((16, 16), (32, 32), (32, 48), (48, 32)):
        for _ in range(20):
            maps = torch.rand(1, h, w, generator=g) ** 3
            raw = (maps[0] > maps[0].mean()).numpy().astype(np.uint8)
            n = h // 16
            ref = cv2.morphologyEx(raw, cv2.MORPH_OPEN, kernel, iterations=n) if n else raw
            assert np.array_equal(word_masks(maps)[0].numpy(), ref.astype(bool))


def test_nearest_resize_at_2x_and_2_5x():
    m = torch.tensor([[True, False], [False, True]])[None]
    assert torch.equal(masks_at(m, (4, 4))[0], m[0].repeat_interleave(2, 0).repeat_interleave(2, 1))
    src = torch.rand(3, 16, 12) > 0.5
    out = masks_at(src, (40, 30))
    assert out.shape == (3, 40, 30) and out.dtype == torch.bool
    rows, cols = (torch.arange(40) * 16) // 40, (torch.arange(30) * 12) // 30        # floor(i * in / out)
    assert torch.equal(out, src[:, rows][:, :, cols])


def cat_dog(h, w):
    """Word 0 ("cat") attends to the left half, word 1 ("dog") to the right half."""
    cat = torch.zeros(h, w)
    cat[:, :w // 2] = 1.0
    return torch.stack([cat, 1.0 - cat])


@pytest.mark.parametrize("grid", [16, 8])                  # maps at the latent grid, or at latent / 2
def test_cat_left_dog_right_at_2x(grid):
    maps = cat_dog(grid, grid)
    views, sets = window_word_sets(maps, (32, 32), (16, 16), 0.5, 0.3)
    assert views == local_views(32, 32, (16, 16), 0.5)[0]
    assert sorted({v.left for v in views}) == [0, 8, 16] and len(views) == 9
    for v, s in zip(views, sets):
        assert s == {0: {0}, 8: {0, 1}, 16: {1}}[v.left], v
    # the middle windows are exactly half cat, half dog: a threshold of 0.5 still keeps both (inclusive)
    _, sets = window_word_sets(maps, (32, 32), (16, 16), 0.5, 0.5)
    assert all(s == {0, 1} for v, s in zip(views, sets) if v.left == 8)
    # threshold 1: only words covering the whole window
    _, sets = window_word_sets(maps, (32, 32), (16, 16), 0.5, 1.0)
    assert [s for v, s in zip(views, sets) if v.top == 0] == [{0}, set(), {1}]


def test_cat_left_dog_right_at_2_5x():
    views, sets = window_word_sets(cat_dog(16, 16), (40, 40), (16, 16), 0.5, 0.3)
    assert sorted({v.left for v in views}) == [0, 8, 16, 24]
    # cat covers columns 0-19: 16/16, 12/16, 4/16 and 0 of the windows at 0, 8, 16, 24
    for v, s in zip(views, sets):
        assert s == {0: {0}, 8: {0}, 16: {1}, 24: {1}}[v.left], v
    _, sets = window_word_sets(cat_dog(16, 16), (40, 40), (16, 16), 0.5, 0.25)
    assert all(s == ({0, 1} if v.left in (8, 16) else {0} if v.left == 0 else {1}) for v, s in zip(views, sets))


def test_coverage_boundary_is_inclusive_at_exactly_30_percent():
    m = torch.zeros(2, 10, 10, dtype=torch.bool)
    m[0].view(-1)[:30] = True                              # 30 of 100 cells
    m[1].view(-1)[:29] = True
    cov = coverage(m, [View("local", 0, 0, 10, 10)])
    assert cov.tolist() == [[0.3, 0.29]]
    assert kept_words(cov, 0.3) == [frozenset({0})]


def test_clipped_window_divides_by_the_full_window_area():
    m = torch.ones(1, 8, 8, dtype=torch.bool)
    cov = coverage(m, [View("local", -2, 0, 4, 4), View("local", 6, 6, 4, 4), View("local", 2, 2, 4, 4)])
    assert cov[:, 0].tolist() == [0.5, 0.25, 1.0]


def test_threshold_zero_keeps_every_word_even_an_empty_one():
    maps = torch.stack([cat_dog(16, 16)[0], torch.zeros(16, 16)])          # word 1 never attended: empty mask
    assert not word_masks(maps)[1].any()
    views, sets = window_word_sets(maps, (32, 32), (16, 16), 0.5, 0.0)
    assert sets == [frozenset({0, 1})] * len(views)


def test_map_accumulator_means_over_every_add():
    acc = MapAccumulator()
    a, b = torch.rand(5, 4, 6), torch.rand(5, 4, 6)
    a_copy = a.clone()
    acc.add("k", a)
    acc.add("k", b)
    rows = torch.rand(3, 5, 24)                            # [rows, tokens, h*w]
    acc.add("k", rows, size=(4, 6))
    acc.add(("other", 1), a.half())
    expect = (a + b + rows.sum(0).unflatten(-1, (4, 6))) / 5
    assert torch.allclose(acc.mean("k"), expect) and acc.mean("k").dtype == torch.float32
    assert torch.equal(a, a_copy)                          # the caller's map is not summed into
    assert acc.count("k") == 5 and acc.count("missing") == 0
    assert ("other", 1) in acc and sorted(map(str, acc.keys())) == ["('other', 1)", "k"]
    assert acc.nbytes == 2 * 5 * 4 * 6 * 4                 # one float32 sum per key, whatever was added
    with pytest.raises(ValueError):
        acc.add("k", torch.rand(5, 6, 4))
    with pytest.raises(ValueError):
        acc.add("k", torch.rand(3, 5, 24), size=(4, 5))


def test_word_maps_average_their_pieces():
    tokens = torch.rand(6, 4, 4)
    words = word_maps(tokens, [[1], [2, 3, 4], [5]])
    assert words.shape == (3, 4, 4)
    assert torch.allclose(words[0], tokens[1]) and torch.allclose(words[1], tokens[2:5].mean(0))
    assert torch.allclose(words[2], tokens[5])
    with pytest.raises(ValueError):
        word_maps(tokens, [[]])
