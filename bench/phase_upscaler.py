"""7. Phase upscaler: what the pixel-space round trip between two phases (tiled decode, enlarge, tiled encode) costs
next to the UNet time of the phase it feeds, per upscaler.

Real architectures, random weights: the SD1.5 UNet and SD VAE (diffusers), and an ESRGAN x4 generator (RRDBNet,
23 blocks of 64 filters: the architecture of 4x-UltraSharp, R-ESRGAN 4x+ and most models users install), written
here from its paper. Phase 2's UNet time is one measured base-size call (cond + uncond rows) times the evaluations
the plan counts for the phase (script/plan_line.py: plan_counts). ESRGAN is convolutional, so its time grows with the
input pixels: it is timed on one 192 px tile (the WebUI's ESRGAN tile) and scaled to the phase-1 picture.
"""
import argparse
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

from common import sd15_unet, sd_vae, table, write_section
from demofusion_ext import tiled_decode, tiled_encode
from demofusion_ext.script.plan_line import plan_counts

ap = argparse.ArgumentParser()
ap.add_argument("--base", type=int, default=64, help="phase-1 latent size (cells); 64 = 512 px, SD1.5's native")
ap.add_argument("--steps", type=int, default=20)
ap.add_argument("--tile", type=int, default=1024, help="decode/encode tile (px), the extension's default")
a = ap.parse_args()


class DenseBlock(nn.Module):
    def __init__(self, nf=64, gc=32):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(nf + i * gc, gc if i < 4 else nf, 3, padding=1) for i in range(5))

    def forward(self, x):
        feats = [x]
        for i, conv in enumerate(self.convs):
            out = conv(torch.cat(feats, 1))
            if i < 4:
                feats.append(F.leaky_relu(out, 0.2))
        return x + 0.2 * out


class RRDBNet(nn.Module):
    """ESRGAN's generator (Wang et al. 2018): residual-in-residual dense blocks, two nearest x2 upsamplings."""

    def __init__(self, nf=64, blocks=23):
        super().__init__()
        self.head = nn.Conv2d(3, nf, 3, padding=1)
        self.body = nn.Sequential(*[nn.Sequential(DenseBlock(nf), DenseBlock(nf), DenseBlock(nf)) for _ in range(blocks)])
        self.trunk = nn.Conv2d(nf, nf, 3, padding=1)
        self.up = nn.ModuleList([nn.Conv2d(nf, nf, 3, padding=1), nn.Conv2d(nf, nf, 3, padding=1)])
        self.hr = nn.Conv2d(nf, nf, 3, padding=1)
        self.last = nn.Conv2d(nf, 3, 3, padding=1)

    def forward(self, x):
        f = self.head(x)
        f = f + self.trunk(self.body(f))
        for conv in self.up:
            f = F.leaky_relu(conv(F.interpolate(f, scale_factor=2, mode="nearest")), 0.2)
        return self.last(F.leaky_relu(self.hr(f), 0.2))


def timed(fn, repeat=1):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


torch.manual_seed(0)
unet, vae = sd15_unet(), sd_vae()
side = a.base * 8
window = torch.randn(2, 4, a.base, a.base)
context = torch.randn(2, 77, 768)
with torch.no_grad():
    unet(window, 999, encoder_hidden_states=context)                           # warm-up
    t_call, _ = timed(lambda: unet(window, 999, encoder_hidden_states=context), repeat=2)
    views = plan_counts(side, side, a.steps, 2, 0.5)[1]["views"]
    t_phase = t_call * views                                                      # cond + uncond rows per view

    base_latent = torch.randn(1, 4, a.base, a.base)
    t_decode, pixels = timed(lambda: tiled_decode(lambda z: vae.decode(z).sample, base_latent, tile=a.tile // 8,
                                                  overlap=a.tile // 32))
    picture = Image.fromarray(((pixels[0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy())
    esrgan = RRDBNet().eval()
    tile = torch.randn(1, 3, 192, 192)
    t_tile, _ = timed(lambda: esrgan(tile))
    t_esrgan = t_tile * (side / 192) ** 2
    big = torch.from_numpy(np.array(picture.resize((2 * side, 2 * side), Image.LANCZOS))).permute(2, 0, 1)
    big = big[None].float() / 127.5 - 1
    t_encode, _ = timed(lambda: tiled_encode(lambda x: vae.encode(x).latent_dist.mean, big, tile=a.tile,
                                             overlap=a.tile // 4))
resize = {name: timed(lambda m=m: picture.resize((2 * side, 2 * side), m))[0]
          for name, m in (("Lanczos", Image.LANCZOS), ("Nearest", Image.NEAREST))}

rows = [["Latent (bicubic, the default)", "-", "-", "-", "0", f"{t_phase:.0f}", "0"]]
for name, t_up in (("Lanczos", resize["Lanczos"]), ("Nearest", resize["Nearest"]),
                   ("ESRGAN x4 (23 RRDB, 64 filters)", t_esrgan + resize["Lanczos"])):
    trip = t_decode + t_up + t_encode
    rows.append([name, f"{t_decode:.1f}", f"{t_up:.2f}", f"{t_encode:.1f}", f"{trip:.1f}", f"{t_phase:.0f}",
                 f"{trip / t_phase:.1%}"])
body = table(["phase upscaler", "decode (s)", "enlarge (s)", "encode (s)", "round trip (s)",
              f"phase 2 UNet ({a.steps} steps, s)", "round trip / phase UNet"], rows)
body += (f"\n\nSD1.5 at {side} px, scale 2: phase 1 ({side} px) decoded, enlarged to {2 * side} px, encoded for phase 2, "
         f"whose UNet time is one measured base-size call with cond and uncond rows ({t_call:.2f} s) x {views} "
         f"views (the plan's count for {a.steps} steps). ESRGAN timed on one 192 px tile ({t_tile:.2f} s), scaled to "
         f"{side} px by pixel count; a 4x model enlarges to {4 * side} px and the WebUI resizes to {2 * side} with "
         f"Lanczos. Random weights: times only.")
write_section("7. Phase upscaler round trip", body)
