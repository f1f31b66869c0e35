"""Shared by the benchmarks: model builders (random weights, real architectures), timing, RESULTS.md sections."""
from __future__ import annotations

import datetime
import os
import pathlib
import platform
import re
import sys
import time

import torch

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from tiny_models import tiny_unet, tiny_vae  # noqa: E402,F401  (the same tiny models as the tests)
RESULTS = ROOT / "bench" / "RESULTS.md"


def sd15_unet():
    """The SD1.5 UNet architecture (860M parameters), random weights."""
    from diffusers import UNet2DConditionModel
    torch.manual_seed(0)
    return UNet2DConditionModel(cross_attention_dim=768).eval().requires_grad_(False)


def sdxl_unet():
    """The SDXL base UNet architecture, random weights."""
    from diffusers import UNet2DConditionModel
    torch.manual_seed(0)
    return UNet2DConditionModel(
        block_out_channels=(320, 640, 1280), down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"), transformer_layers_per_block=(1, 2, 10),
        attention_head_dim=(5, 10, 20), cross_attention_dim=2048, addition_embed_type="text_time",
        addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816, use_linear_projection=True,
        ).eval().requires_grad_(False)


def sd_vae():
    """The SD VAE architecture (8x, 4 latent channels), random weights."""
    from diffusers import AutoencoderKL
    torch.manual_seed(0)
    return AutoencoderKL(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                         up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2,
                         latent_channels=4).eval().requires_grad_(False)


def eps_predict(unet, context):
    def predict(x, t, **_):
        return unet(x, t, encoder_hidden_states=context.repeat(x.shape[0] // context.shape[0], 1, 1)).sample
    return predict


class Stopwatch:
    """Accumulates the wall time spent inside wrapped callables."""

    def __init__(self):
        self.seconds = 0.0

    def wrap(self, fn):
        def timed(*a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                self.seconds += time.perf_counter() - t0
        return timed


def machine() -> str:
    return (f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"{datetime.date.today().isoformat()}")


def table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def write_section(title: str, body: str) -> None:
    """Replace (or add) the section `## title` of bench/RESULTS.md with body, command and machine."""
    command = "python " + " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:])
    section = f"## {title}\n\nCommand: `{command}`  \nMachine: {machine()}\n\n{body.strip()}\n"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\nRatios measured side by side in one run.\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(section + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    RESULTS.write_text(text)
    print(section)

