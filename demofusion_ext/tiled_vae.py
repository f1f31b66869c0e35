"""Tiled VAE decode and encode with blended overlaps: memory bounded by the tile, whatever the image size.

Tiles overlap by at least `overlap`; inside an overlap the two tiles are cross-faded with linear ramps, so
no seam is a hard edge. Tiles are sized to cover the image evenly, so the extra work is
(1 + (n - 1) overlap / size)^2 for n tiles per axis, far below the 16x of decoding 1024 px tiles for 256 px cores.
"""
from __future__ import annotations

from typing import Callable

import torch

from .views import ceil_div

Codec = Callable[[torch.Tensor], torch.Tensor]


def _ramp(length: int, fade_in: int, fade_out: int, margin: float = 0.25) -> torch.Tensor:
    """Weights along one tile axis: 1 inside, rising over the first `fade_in` samples and falling over the
    last `fade_out`. The outer `margin` of each fade gets weight 0: a tile's border pixels saw the least
    context, so they are left to the neighbour, and the cross-fade runs in the middle of the overlap."""
    w = torch.ones(length, dtype=torch.float64, device="cpu")

    def fade(n):
        m = int(n * margin)
        k = torch.arange(n, dtype=torch.float64, device="cpu")
        return ((k - m + 0.5) / max(1, n - 2 * m)).clamp(0, 1)
    if fade_in:
        w[:fade_in] = fade(fade_in)
    if fade_out:
        w[length - fade_out:] = torch.minimum(w[length - fade_out:], fade(fade_out).flip(0))
    return w


def _axis(length: int, tile: int, overlap: int, align: int) -> tuple[int, list[tuple[int, int, int]]]:
    """The tile length and (start, fade_in, fade_out) of each tile along one axis.

    As few tiles as `tile` allows, then shrunk to the smallest equal length (a multiple of `align`) that still
    covers the axis with `overlap`, spaced evenly (starts multiples of `align`): a last tile pushed flush
    against the border would repeat most of its neighbour's work.
    """
    if length <= tile:
        return length, [(0, 0, 0)]
    n = ceil_div(length - overlap, max(1, tile - overlap))
    tile = min(tile, ceil_div(ceil_div(length + (n - 1) * overlap, n), align) * align)
    starts = [round(i * (length - tile) / (n - 1)) // align * align for i in range(n - 1)] + [length - tile]
    out = []
    for i, s in enumerate(starts):
        fade_in = starts[i - 1] + tile - s if i > 0 else 0
        fade_out = s + tile - starts[i + 1] if i + 1 < len(starts) else 0
        out.append((s, max(0, fade_in), max(0, fade_out)))
    return tile, out


def tiled_apply(fn: Codec, x: torch.Tensor, tile: int, overlap: int, factor: float, align: int = 1,
                out_device=None, out_dtype=None) -> torch.Tensor:
    """Apply a resolution-changing codec (`factor` = output pixels per input pixel) tile by tile.

    `tile` and `overlap` are in input pixels. Results are accumulated in float32 (at least) on `out_device`
    (default: the codec's output device) and returned in `out_dtype` (default: the codec's output dtype).
    """
    b, _, h, w = x.shape
    if h <= tile and w <= tile:
        return fn(x)
    (th, rows), (tw, cols) = _axis(h, tile, overlap, align), _axis(w, tile, overlap, align)
    oh, ow = int(round(h * factor)), int(round(w * factor))
    value = weight = None
    for r0, r_in, r_out in rows:
        wr = _ramp(int(round(th * factor)), int(round(r_in * factor)), int(round(r_out * factor)))
        for c0, c_in, c_out in cols:
            wc = _ramp(int(round(tw * factor)), int(round(c_in * factor)), int(round(c_out * factor)))
            y = fn(x[..., r0:r0 + th, c0:c0 + tw])
            if value is None:
                dev = out_device or y.device
                out_dtype = out_dtype or y.dtype
                acc = torch.promote_types(out_dtype, torch.float32)    # half-precision sums of ramps drift
                value = torch.zeros(b, y.shape[1], oh, ow, device=dev, dtype=acc)
                weight = torch.zeros(1, 1, oh, ow, device=dev, dtype=acc)
            wt = (wr[:, None] * wc[None, :]).to(device=value.device, dtype=value.dtype)
            R, C = int(round(r0 * factor)), int(round(c0 * factor))
            value[..., R:R + wt.shape[0], C:C + wt.shape[1]] += y.to(value.device, value.dtype) * wt
            weight[..., R:R + wt.shape[0], C:C + wt.shape[1]] += wt
    return (value / weight).to(out_dtype)


def tiled_decode(decode: Codec, latent: torch.Tensor, tile: int = 128, overlap: int = 16, factor: int = 8,
                 **kw) -> torch.Tensor:
    """Decode `latent` in tiles of `tile` latent cells overlapping by `overlap` cells."""
    return tiled_apply(decode, latent, tile, overlap, factor, **kw)


def tiled_encode(encode: Codec, image: torch.Tensor, tile: int = 1024, overlap: int = 128, factor: int = 8,
                 **kw) -> torch.Tensor:
    """Encode `image` in tiles of `tile` pixels overlapping by `overlap` pixels (starts on the latent grid)."""
    return tiled_apply(encode, image, tile, overlap, 1.0 / factor, align=factor, **kw)
