"""8. Per-view prompts: what the phase-1 attention capture costs, and how many texts a phase encodes."""
import argparse
import statistics
import time

import torch

from common import sd15_unet, table, write_section
from demofusion_ext.anti_repetition.attention_capture import AttentionCapture, cross_attentions
from demofusion_ext.phases import plan_phases
from demofusion_ext.anti_repetition.prompt_masks import window_word_sets
from demofusion_ext.views import local_views

ap = argparse.ArgumentParser()
ap.add_argument("--base", type=int, default=32, help="phase-1 latent size (cells); 32 = 256 px")
ap.add_argument("--calls", type=int, default=7)
a = ap.parse_args()

unet, ctx = sd15_unet(), torch.randn(2, 77, 768)
x, t = torch.randn(2, 4, a.base, a.base), torch.tensor([500.0, 500.0])


def call(capture):
    start = time.perf_counter()
    with torch.no_grad():
        if capture is None:
            unet(x, t, encoder_hidden_states=ctx)
        else:
            with capture.hooked(unet):
                unet(x, t, encoder_hidden_states=ctx)
    return time.perf_counter() - start


capture = AttentionCapture(lambda n: [0] + [None] * (n - 1),            # row 0 cond (image 0), row 1 uncond
                           target_queries=(a.base // 4) ** 2)     # as the hosts: latent / 4 once seen
call(None)                                                             # warm-up
times = {"plain": [], "hooked": []}
for _ in range(a.calls):                                               # interleaved: load changes hit both alike
    times["plain"].append(call(None))
    times["hooked"].append(call(capture))
plain, hooked = (statistics.median(times[k]) for k in ("plain", "hooked"))
timing = table(["UNet call (cond + uncond rows)", "median s per call", "ratio"],
               [["without capture", f"{plain:.2f}", "1.00"], ["with capture", f"{hooked:.2f}", f"{hooked / plain:.3f}"]])

layers = len(cross_attentions(unet))
grids = sorted({q for (_, q) in capture.sums.keys()}, reverse=True)
per_image = capture.nbytes
# the sums hold tokens x queries per grid: scale the measured bytes to a 512 px (64 x 64 latent) phase 1
at512 = per_image * (64 * 64) / (a.base * a.base)

rows = []
for scale in (2, 3, 4):
    phase = plan_phases(64, 64, scale)[-1]
    windows = len(local_views(phase.height, phase.width, (64, 64), 0.5)[0])
    maps = torch.zeros(2, 16, 16)
    maps[0, :, :8], maps[1, :, 8:] = 1, 1                      # two words: left half, right half
    _, kept = window_word_sets(maps, phase.shape, (64, 64), 0.5, 0.3)
    distinct = len({k for k in kept if len(k) < 2})
    rows.append([f"{scale}x", windows, distinct, windows])
counts = table(["last phase", "local windows", "texts encoded (left/right words)", "at most"], rows)

write_section("8. Per-view prompts: capture and encoding costs", f"""{timing}

SD1.5 UNet architecture (random weights), phase-1 latent {a.base}x{a.base}, one image (a cond and an uncond row),
median of {a.calls} interleaved calls each. The capture hooks the {layers} cross-attentions of the input and output
blocks and forms, for the cond row only, softmax(q k^T) averaged over heads in float32 (the WebUIs' attention never
forms it); after the first call only at the latent / 4 grid, as the hosts do.
Capture memory: {per_image / 2 ** 20:.2f} MiB per image at this size (grids of {', '.join(map(str, grids))} queries x 77
tokens, float32 sums, whatever the step count), about {at512 / 2 ** 20:.1f} MiB per image for a 512 px phase 1.

{counts}

Text encoder calls: each phase encodes each distinct kept-word text once, in one batch, before it samples (SD1
models at 512 px base, stride 0.5, threshold 0.3; synthetic maps with one word on each half). A window that keeps
every word reuses the prompt's own rows and costs nothing; the worst case is one text per window.""")
print("done")
