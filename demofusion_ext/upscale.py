"""How a finished phase becomes the next phase's starting latent: DemoFusion's bicubic latent enlargement."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def upscale_latent(z: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Bicubic enlargement to `shape` (latent cells), computed in float32 at least: half-precision bicubic rounds
    each tap, and a float64 latent must not be rounded to float32."""
    out = F.interpolate(z.to(torch.promote_types(z.dtype, torch.float32)), size=tuple(shape), mode="bicubic",
                        align_corners=False)
    return out.to(z.dtype)
