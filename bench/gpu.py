"""6. On a CUDA GPU: the SDXL UNet architecture in fp16 at 2048x2048 (scale 2) and 3072x3072 (scale 3) from a 1024
base: seconds per image and peak VRAM. The run is device-clean: the driver makes every tensor on the GPU in fp16
(device=, dtype=; noise drawn on the CPU from per-image generators, then moved) and the model stays there.
Without a GPU it records that none was lent to the task."""
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
    write_section("6. GPU (SDXL architecture, fp16)", "No GPU was lent to this task (the session that ran this had "
                  "none): no figures. Run `python bench/gpu.py` on a CUDA machine to fill this section.")
    raise SystemExit(0)

dev, dtype = torch.device("cuda"), torch.float16
unet = sdxl_unet().to(dev, dtype)
ctx, pooled = torch.randn(2, 77, 2048, device=dev, dtype=dtype), torch.randn(2, 1280, device=dev, dtype=dtype)
ids = torch.tensor([[1024, 1024, 0, 0, 1024, 1024]] * 2, device=dev, dtype=dtype)


def predict(x, t, **_):
    """CFG rows (cond + uncond) for the driver's rows; x and t arrive on the GPU in fp16 and the eps stays there."""
    assert x.device.type == dev.type and x.dtype == dtype, (x.device, x.dtype)
    rows = x.shape[0]
    eps = unet(torch.cat([x, x]), torch.cat([t, t]), encoder_hidden_states=ctx.repeat(rows, 1, 1),
               added_cond_kwargs={"text_embeds": pooled.repeat(rows, 1), "time_ids": ids.repeat(rows, 1)}).sample
    return eps[:rows]


def generate(scale, steps):
    with torch.no_grad():
        settings = DemoFusionSettings(scale=scale, view_batch_size=a.view_batch)
        out = run_demofusion(predict, (1, 4, a.base, a.base), settings, steps=steps, seeds=[0], device=dev, dtype=dtype)
    assert all(z.device.type == dev.type and z.dtype == dtype for z in out), [(z.device, z.dtype) for z in out]
    return out


generate(2, 1)          # warm-up: kernels, cuDNN/cuBLAS handles, the allocator's pools
rows = []
for scale in (2, 3):
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    generate(scale, a.steps)
    torch.cuda.synchronize()
    rows.append([f"{a.base * 8 * scale}x{a.base * 8 * scale}", f"{time.perf_counter() - t0:.1f}",
                 f"{torch.cuda.max_memory_allocated() / 2**30:.1f}"])
write_section("6. GPU (SDXL architecture, fp16)", table(["output", "seconds per image", "peak VRAM GiB"], rows) + f"""

{torch.cuda.get_device_name()}, SDXL UNet architecture (random weights) in fp16, {a.steps} steps, Euler, CFG rows
(cond + uncond), view batch {a.view_batch}, no VAE (decoding is section 3's). Every latent, the noise after its CPU
draw and the model stay on the GPU in fp16 (run_demofusion(device="cuda", dtype=torch.float16)). One warm-up run
(scale 2, 1 step) first; peak VRAM is torch.cuda.max_memory_allocated, the weights (2.6 B parameters, 4.8 GiB in
fp16) included.""")
