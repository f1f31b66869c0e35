"""The view layout: local windows (MultiDiffusion) with seeded jitter, and dilated global sub-grids.

A View names a region of a phase latent in that latent's own coordinates. Local views are contiguous
windows that may reach past the border into zero padding (jitter); global views are the sub-grid
rows ``top, top + step, ...`` of a latent zero-padded at the top/left to a multiple of ``step``.
The same View extracts the matching part of any spatial tensor at a multiple of the latent's
resolution (``cell``: 8 for a pixel-space ControlNet hint), so conditioning stays aligned.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

import torch


@dataclass(frozen=True)
class View:
    kind: str       # "local" or "global"
    top: int        # first latent row (may be negative: padding)
    left: int
    height: int     # rows/columns of the view
    width: int
    step: int = 1   # 1 for local windows, the dilation for global views
    # its place in the layout: a window's number in row-major order of the unjittered grid (two jittered windows
    # may land on the same cells, so position alone does not tell them apart), a global view's sub-grid i * d + j
    index: int = 0

    def extract(self, t: torch.Tensor, cell: int = 1, out: torch.Tensor | None = None) -> torch.Tensor:
        """The view's part of `t` [..., H*cell, W*cell]; cells outside the tensor are zeros.

        Only the view's own cells are read (never a padded copy of `t`). With `out` ([..., height*cell,
        width*cell], zeros where the view leaves `t`) they are copied straight into it: one small copy.
        """
        h, w = t.shape[-2] // cell, t.shape[-1] // cell
        (r0, rn, tr), (c0, cn, tc) = self._inside(self.top, self.height, h), self._inside(self.left, self.width, w)
        whole = r0 == 0 and c0 == 0 and rn == self.height and cn == self.width
        if out is None:
            if whole and self.step == 1:
                return t[..., tr * cell:(tr + rn) * cell, tc * cell:(tc + cn) * cell]
            out = t.new_zeros(*t.shape[:-2], self.height * cell, self.width * cell)
        if rn <= 0 or cn <= 0:
            return out
        # whole cell x cell blocks at the stride, as views of t, so a pixel hint follows its latent cells
        src = t[..., tr * cell:(tr + (rn - 1) * self.step + 1) * cell, tc * cell:(tc + (cn - 1) * self.step + 1) * cell]
        src = src.unflatten(-2, (-1, cell))[..., ::self.step, :, :].unflatten(-1, (-1, cell))[..., ::self.step, :]
        dst = out[..., r0 * cell:(r0 + rn) * cell, c0 * cell:(c0 + cn) * cell]
        dst.unflatten(-2, (rn, cell)).unflatten(-1, (cn, cell)).copy_(src)
        return out

    def _inside(self, start: int, count: int, length: int) -> tuple[int, int, int]:
        """(first view cell inside the tensor, how many, its tensor cell) along one axis of `length` cells."""
        first = ceil_div(-start, self.step) if start < 0 else 0
        last = min(count, ceil_div(length - start, self.step))
        return first, max(0, last - first), start + first * self.step


@dataclass(frozen=True)
class Layout:
    """Every view of one fused evaluation, and the padding their write-back needs."""
    local: tuple[View, ...]         # the MultiDiffusion windows
    dilated: tuple[View, ...]       # the global views: the dilation^2 strided sub-grids
    local_pad: tuple[int, int]      # zero padding on every side of the latent that jittered windows reach (rows, cols)
    dilated_pad: tuple[int, int]    # top/left zero padding that makes the latent a multiple of the dilation (or more)
    dilation: int


def window_stride(window: tuple[int, int], stride: float) -> tuple[int, int]:
    return tuple(max(1, int(w * stride + 0.5)) for w in window)      # half up, as the UI's JavaScript


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def window_starts(length: int, window: int, stride: int) -> list[int]:
    """Starts of windows that cover [0, length): every `stride`, the last one flush with the end."""
    if length <= window:
        return [0]
    n = ceil_div(length - window, stride) + 1
    return [min(i * stride, length - window) for i in range(n)]


def jitter_range(window: int, stride: int) -> int:
    # neighbours overlap by window - stride >= 4 J, so moves of +-J never open a gap
    return max(0, (window - stride) // 4)


def _jitter(rng: random.Random, start: int, end: int, length: int, j: int) -> int:
    # windows at a border move outwards only, so the border cells stay covered
    first, last = start == 0, end >= length
    if first and last:
        return 0
    if first:
        return rng.randint(-j, 0)
    if last:
        return rng.randint(0, j)
    return rng.randint(-j, j)


def local_views(height: int, width: int, window: tuple[int, int], stride: float,
                rng: random.Random | None = None) -> tuple[tuple[View, ...], tuple[int, int]]:
    """Windows of size `window` over a height x width latent, jittered when `rng` is given."""
    wh, ww = min(window[0], height), min(window[1], width)
    sh, sw = window_stride((wh, ww), stride)
    jh, jw = (jitter_range(wh, sh), jitter_range(ww, sw)) if rng is not None else (0, 0)
    views = []
    for top in window_starts(height, wh, sh):
        for left in window_starts(width, ww, sw):
            dt = _jitter(rng, top, top + wh, height, jh) if rng is not None else 0
            dl = _jitter(rng, left, left + ww, width, jw) if rng is not None else 0
            views.append(View("local", top + dt, left + dl, wh, ww, index=len(views)))
    return tuple(views), (jh, jw)


def global_views(height: int, width: int, dilation: int, multiple: int = 1) -> tuple[tuple[View, ...], tuple[int, int]]:
    """The dilation^2 interleaved sub-grids of the latent, padded at the top/left to a multiple of it.

    `multiple` rounds the sub-grid size up (more top/left padding), for models that need sizes
    divisible by their downsampling factor; padding cells are evaluated but never written back.
    """
    d = dilation
    gh = ceil_div(ceil_div(height, d), multiple) * multiple
    gw = ceil_div(ceil_div(width, d), multiple) * multiple
    ph, pw = gh * d - height, gw * d - width
    views = tuple(View("global", i - ph, j - pw, gh, gw, d, i * d + j) for i in range(d) for j in range(d))
    return views, (ph, pw)


def make_layout(height: int, width: int, window: tuple[int, int], stride: float, dilation: int,
                rng: random.Random | None = None, multiple: int = 1) -> Layout:
    local, local_pad = local_views(height, width, window, stride, rng)
    dilated, dilated_pad = global_views(height, width, dilation, multiple)
    return Layout(local, dilated, local_pad, dilated_pad, dilation)


def window_indices(views: Sequence[View]) -> list[int | None]:
    """Each view's window number (None for a global view): per-view prompts keep one text per window."""
    return [v.index if v.kind == "local" else None for v in views]


def size_multiple(window: tuple[int, int], limit: int = 8) -> int:
    """The largest power of two <= limit dividing both window sides: a view size the model already ran at."""
    m = limit
    while m > 1 and (window[0] % m or window[1] % m):
        m //= 2
    return m
