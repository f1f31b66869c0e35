"""3. Tiled decoding: decoder work per output pixel and seam quality against one full decode (SD VAE architecture)."""
import argparse

import torch

from common import sd_vae, table, write_section
from demofusion_ext import tiled_decode
from demofusion_ext.tiled_vae import _axis
from demofusion_ext.views import View, window_starts

ap = argparse.ArgumentParser()
ap.add_argument("--latent", type=int, default=32, help="latent size (cells); a full decode must fit")
ap.add_argument("--tile", type=int, default=16, help="our tile (cells); the official scheme's window is the same")
a = ap.parse_args()

vae = sd_vae()
z = torch.randn(1, 4, a.latent, a.latent, generator=torch.Generator().manual_seed(0))
pixels = []


def decode(x):
    pixels.append(x.shape[-2] * x.shape[-1] * 64)
    return vae.decode(x).sample


def psnr(x, ref):
    return float(10 * torch.log10((ref.max() - ref.min()) ** 2 / ((x - ref) ** 2).mean()))


def official(latent, core, context):
    """The official pipeline's scheme: each core decoded inside a window of `context` cells around it."""
    h, w = latent.shape[-2:]
    out = torch.zeros(1, 3, h * 8, w * 8)
    for r in window_starts(h, core, core):
        for c in window_starts(w, core, core):
            t, l = max(0, min(r - (context - core) // 2, h - context)), max(0, min(c - (context - core) // 2, w - context))
            img = decode(View("local", t, l, min(context, h), min(context, w)).extract(latent))
            out[..., r * 8:(r + core) * 8, c * 8:(c + core) * 8] = img[..., (r - t) * 8:(r - t + core) * 8,
                                                                        (c - l) * 8:(c - l + core) * 8]
    return out


def flush_work(length, tile, overlap):
    """Work per pixel along one axis of the earlier tiler: full tiles, the last pushed flush with the border."""
    tile = min(tile, length)
    return len(window_starts(length, tile, max(1, tile - overlap))) * tile / length


with torch.no_grad():
    full = decode(z)
    area = pixels.pop()
    rows = []
    t = a.tile
    big, big_overlap = a.latent * 11 // 16, a.latent * 3 // 8          # 22 and 12 cells on a 32-cell latent
    for name, run in [(f"ours, {t}-cell tiles, {t // 4} overlap", lambda: tiled_decode(decode, z, t, t // 4)),
                      (f"ours, {t}-cell tiles, {t // 2} overlap", lambda: tiled_decode(decode, z, t, t // 2)),
                      (f"ours, {big}-cell tiles, {big_overlap} overlap",
                       lambda: tiled_decode(decode, z, big, big_overlap)),
                      (f"official scheme, {t // 4}-cell cores in {t}-cell windows (1:4)",
                       lambda: official(z, t // 4, t))]:
        pixels.clear()
        out = run()
        rows.append([name, f"{sum(pixels) / area:.2f}x", f"{psnr(out, full):.1f}"])
# work at real output sizes with the default tile (1024 px = 128 cells, overlap 32 cells), from the tile plan alone
sizes = []
for px in (2048, 3072, 4096):
    n = px // 8
    tile, plan = _axis(n, 128, 32, 1)
    sizes.append([f"{px} x {px}", f"{len(plan)} x {len(plan)} of {tile * 8} px", f"{(len(plan) * tile / n) ** 2:.2f}x",
                  f"{flush_work(n, 128, 32) ** 2:.2f}x"])
write_section("3. Tiled decoding", table(["decoder", "work per output pixel", "PSNR vs full decode (dB)"], rows) + f"""

SD VAE architecture (random weights), {a.latent}x{a.latent} latent ({a.latent * 8} px), where one full decode still fits.
Our tile is a maximum: the tiler uses as few tiles as it allows, shrunk to cover the image evenly with at least
the overlap. The official pipeline decodes 1024 px tiles to keep 256 px cores, a 1:4 core-to-window ratio (16x
work on large images; less here, where windows are clamped at the borders of a small image).
Target: <= 2x work at >= 40 dB.

Work at real output sizes with the default decode tile (1024 px, overlap 256 px), from the tile plan; the last
column is the earlier tiler (full 1024 px tiles, the last one flush with the border):

""" + table(["output", "tiles", "work per pixel", "earlier tiler"], sizes))
