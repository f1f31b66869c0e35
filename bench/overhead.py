"""2. Engine overhead: the share of a generation's time spent outside model evaluations (SD1.5 architecture)."""
import argparse
import time

import torch

from common import Stopwatch, eps_predict, sd15_unet, table, write_section
from demofusion_ext import DemoFusionSettings, run_demofusion

ap = argparse.ArgumentParser()
ap.add_argument("--steps", type=int, default=2)
ap.add_argument("--base", type=int, default=8, help="base latent size (cells); 8 = 64 px")
ap.add_argument("--scales", default="2,3,4")
a = ap.parse_args()

unet, ctx = sd15_unet(), torch.randn(1, 77, 768)
rows = []
for scale in [float(s) for s in a.scales.split(",")]:
    watch = Stopwatch()
    t0 = time.perf_counter()
    with torch.no_grad():
        run_demofusion(watch.wrap(eps_predict(unet, ctx)), (1, 4, a.base, a.base), DemoFusionSettings(scale=scale),
                       steps=a.steps, seeds=[0])
    total = time.perf_counter() - t0
    rows.append([scale, f"{total:.1f}", f"{watch.seconds:.1f}", f"{100 * (total - watch.seconds) / total:.2f}%"])
write_section("2. Engine overhead", table(["scale", "run s", "inside the UNet s", "outside (engine) share"], rows) +
              f"""

SD1.5 UNet architecture (860M parameters, random weights) on a {a.base}x{a.base} base latent, {a.steps} steps, Euler,
view batch 16, no VAE. "Outside" is everything but the UNet calls: view extraction, blur, write-back, skip
residual, sampler arithmetic. Target <= 5%. The times are CPU seconds of this run; only the share is meant
to carry over.""")
