"""6. On a CUDA GPU: the SDXL UNet architecture in fp16 at 2048x2048 (scale 2) and 3072x3072 (scale 3) from a 1024
base: seconds per image and peak VRAM. Without a GPU it records that none was available."""
import argparse
import time

import torch

from common import sdxl_unet, table, write_section
from demofusion_ext import DemoFusionSettings, run_demofusion

ap = argparse.ArgumentParser()
ap.add_argument("--steps", type=int, default=20)
ap.add_argument("--base", type=int, default=128, help="base latent (cells); 128 = 1024 px")
ap.add_argument("--view-batch", type=int, default=16)
a = ap.parse_args()

if not torch.cuda.is_available():
    write_section("6. GPU (SDXL architecture, fp16)", "No GPU was available to the session that ran this: no figures. "
                  "Run `python bench/gpu.py` on a CUDA machine to fill this section.")
    raise SystemExit(0)

dev = torch.device("cuda")
unet = sdxl_unet().to(dev, torch.float16)
ctx, pooled = torch.randn(2, 77, 2048, device=dev, dtype=torch.float16), torch.randn(2, 1280, device=dev, dtype=torch.float16)
ids = torch.tensor([[1024, 1024, 0, 0, 1024, 1024]] * 2, device=dev, dtype=torch.float16)


def predict(x, t, **_):
    n = x.shape[0] // 2
    return unet(x.half(), t.to(dev), encoder_hidden_states=ctx.repeat(n, 1, 1),
                added_cond_kwargs={"text_embeds": pooled.repeat(n, 1), "time_ids": ids.repeat(n, 1)}).sample.float()


rows = []
for scale in (2, 3):
    torch.cuda.reset_peak_memory_stats()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    with torch.no_grad():
        run_demofusion(lambda x, t, **k: predict(torch.cat([x, x]), torch.cat([t, t]))[: x.shape[0]],
                       (1, 4, a.base, a.base), DemoFusionSettings(scale=scale, view_batch_size=a.view_batch),
                       steps=a.steps, seeds=[0])
    torch.cuda.synchronize()
    rows.append([f"{a.base * 8 * scale}x{a.base * 8 * scale}", f"{time.perf_counter() - t0:.1f}",
                 f"{torch.cuda.max_memory_allocated() / 2**30:.1f}"])
write_section("6. GPU (SDXL architecture, fp16)", table(["output", "seconds per image", "peak VRAM GiB"], rows) + f"""

{torch.cuda.get_device_name()}, SDXL UNet architecture (random weights) in fp16, {a.steps} steps, Euler, CFG rows
(cond + uncond), view batch {a.view_batch}, no VAE (decoding is section 3's).""")
