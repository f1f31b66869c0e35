"""How a finished phase becomes the next phase's starting latent: DemoFusion's bicubic latent enlargement."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def upscale_latent(z: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Bicubic enlargement to `shape` (latent cells), computed in float32: half-precision bicubic rounds each tap."""
    out = F.interpolate(z.float(), size=tuple(shape), mode="bicubic", align_corners=False)
    return out.to(z.dtype)
