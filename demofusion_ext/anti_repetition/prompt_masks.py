"""Which prompt words each local window keeps: AccDiffusion's keep rule for per-view prompts.

Phase 1 records, per prompt word, a cross-attention map on a coarse UNet grid. A word is "present" in
a cell when its map there exceeds the map's own mean; an opening removes speckles. Before each later
phase the masks are resized to that phase's latent, and a local window keeps the words whose mask
covers at least a share c of it (AccDiffusion: c = 0.3). Windows are the engine's own local views at
their unjittered anchors, so a window's word set is fixed for the whole phase.

Shapes: W words, h x w the attention grid (rows x columns, row-major throughout; AccDiffusion's code
transposes non-square masks, this module does not), H x W_ a phase latent in latent cells.
Nothing here knows about a WebUI: the hosts capture the maps and encode the kept words.
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch
import torch.nn.functional as F

from ..views import View, local_views


def opening_iterations(rows: int) -> int:
    """Erosions (and then dilations) of the opening: one per 16 map rows, as AccDiffusion (0 below 16)."""
    return rows // 16


def _erode(m: torch.Tensor) -> torch.Tensor:
    # min over 3x3 = NOT max(NOT m); max_pool2d pads with -inf, so cells outside never win: they count
    # as True here (nothing erodes in from the border), as OpenCV's default border for erode
    return -F.max_pool2d(-m, 3, stride=1, padding=1)


def _dilate(m: torch.Tensor) -> torch.Tensor:
    # the same padding counts outside cells as False: nothing dilates in from the border (OpenCV default)
    return F.max_pool2d(m, 3, stride=1, padding=1)


def word_masks(maps: torch.Tensor) -> torch.Tensor:
    """[W, h, w] non-negative maps -> [W, h, w] bool: map > its own spatial mean, then opened.

    The mean is per word, so a weakly attended word is judged against itself, not against the strong
    ones. The opening (3x3 all-ones element, floor(h / 16) erosions then as many dilations) removes
    blobs smaller than the element, so a word does not stay in a window on the strength of scattered
    noise, while large regions (including those touching the border) come back unchanged in outline.
    """
    if maps.dim() != 3:
        raise ValueError(f"maps must be [words, rows, columns], got {tuple(maps.shape)}")
    m = maps.float()
    mask = (m > m.mean(dim=(-2, -1), keepdim=True)).float().unsqueeze(1)   # [W, 1, h, w]
    n = opening_iterations(maps.shape[-2])
    for _ in range(n):
        mask = _erode(mask)
    for _ in range(n):
        mask = _dilate(mask)
    return mask.squeeze(1) > 0.5


def masks_at(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[W, h, w] bool -> [W, H, W_] bool, nearest-neighbour as torch's `nearest` (any scale, e.g. 2.5x)."""
    if masks.shape[0] == 0:
        return masks.new_zeros(0, *size)
    return F.interpolate(masks.float().unsqueeze(1), size=tuple(size), mode="nearest").squeeze(1) > 0.5


def coverage(masks_phase: torch.Tensor, views: Sequence[View]) -> torch.Tensor:
    """[n_views, W] float64: the share of each view's window covered by each word's mask.

    `masks_phase` is [W, H, W_] bool at the phase latent; views are local windows (top, left, height,
    width in latent cells). A window reaching past the latent counts only its cells inside, still divided
    by the full window area (outside cells count as "not covered"; unjittered anchors never leave the
    latent). float64 division makes count / area the double nearest the exact ratio, so a threshold typed
    as a decimal (0.3) compares inclusively at the boundary (30 of 100 cells keeps the word).
    """
    H, W_ = masks_phase.shape[-2:]
    counts = torch.zeros(len(views), masks_phase.shape[0], dtype=torch.float64)
    for i, v in enumerate(views):
        r0, r1 = max(0, v.top), min(H, v.top + v.height)
        c0, c1 = max(0, v.left), min(W_, v.left + v.width)
        if r1 > r0 and c1 > c0:
            counts[i] = masks_phase[:, r0:r1, c0:c1].sum(dim=(-2, -1)).to("cpu", torch.float64)
        counts[i] /= v.height * v.width
    return counts


def kept_words(coverage: torch.Tensor, threshold: float) -> list[frozenset[int]]:
    """Per view (row of `coverage` [n_views, W]), the words with coverage >= threshold (inclusive).

    threshold <= 0 keeps every word, even one whose mask is empty: c = 0 means "keep all", so the
    per-view prompts equal the full prompt (hosts rely on this for a byte-identical result).
    """
    n_views, n_words = coverage.shape
    if threshold <= 0:
        every = frozenset(range(n_words))
        return [every] * n_views
    keep = coverage >= threshold
    return [frozenset(torch.nonzero(row).flatten().tolist()) for row in keep]


def window_word_sets(maps: torch.Tensor, phase_hw: tuple[int, int], window: tuple[int, int], stride: float,
                     threshold: float) -> tuple[tuple[View, ...], list[frozenset[int]]]:
    """The phase's unjittered local views and each one's kept word indices.

    maps: [W, h, w] phase-1 word maps; phase_hw: the phase latent (H, W_); window: the phase-1 latent
    (rows, columns) in latent cells; stride: the window stride as a share of the window.
    """
    views, _ = local_views(phase_hw[0], phase_hw[1], window, stride, rng=None)
    masks = masks_at(word_masks(maps), phase_hw)
    return views, kept_words(coverage(masks, views), threshold)


def word_maps(token_maps: torch.Tensor, words: Sequence[Sequence[int]]) -> torch.Tensor:
    """[T, h, w] per-token maps -> [W, h, w]: word i's map is the mean of its token positions `words[i]`.

    A word split into several BPE pieces (or a textual-inversion embedding over several positions) is
    judged as one unit, so it is kept or dropped whole.
    """
    out = token_maps.new_zeros(len(words), *token_maps.shape[-2:], dtype=torch.float32)
    for i, positions in enumerate(words):
        if not positions:
            raise ValueError(f"word {i} has no token positions")
        out[i] = token_maps[list(positions)].float().mean(dim=0)
    return out


class MapAccumulator:
    """Running sums of attention maps per key (e.g. (image, subprompt, schedule entry)), float32.

    Memory is one [tokens, h, w] float32 sum per key however many maps are added, on the device of the
    first map added (no host sync while sampling).
    """

    def __init__(self):
        self._sum: dict[Hashable, torch.Tensor] = {}
        self._rows: dict[Hashable, int] = {}

    def add(self, key: Hashable, probs: torch.Tensor, size: tuple[int, int] | None = None) -> None:
        """Add maps under `key`.

        probs: either [tokens, h, w] (one map set, size None), or [rows, tokens, h*w] with size = (h, w)
        (e.g. one row per image or head; each row counts as one map set). A key keeps its first shape.
        """
        p = probs.detach()
        if size is None:
            if p.dim() != 3:
                raise ValueError(f"expected [tokens, h, w], got {tuple(p.shape)}")
            total, rows = p.to(torch.float32, copy=True), 1      # a copy: the sum must not alias the caller's map
        else:
            if p.dim() != 3 or p.shape[-1] != size[0] * size[1]:
                raise ValueError(f"expected [rows, tokens, {size[0]}*{size[1]}], got {tuple(p.shape)}")
            total, rows = p.float().sum(dim=0).unflatten(-1, tuple(size)), p.shape[0]
        if key in self._sum:
            if self._sum[key].shape != total.shape:
                raise ValueError(f"key {key!r}: maps {tuple(total.shape)} after {tuple(self._sum[key].shape)}")
            self._sum[key] += total.to(self._sum[key].device)
        else:
            self._sum[key] = total
            self._rows[key] = 0
        self._rows[key] += rows

    def mean(self, key: Hashable) -> torch.Tensor:
        """[tokens, h, w] float32: the mean of every map set added under `key`."""
        return self._sum[key] / self._rows[key]

    def count(self, key: Hashable) -> int:
        """Map sets (rows) summed under `key`."""
        return self._rows.get(key, 0)

    def keys(self) -> list:
        return list(self._sum)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._sum

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self._sum.values())
