"""The conditioning of a model call over stacked views: what each view's rows need besides the latent.

Rows of a call are view-major (see fusion.py): per-row tensors repeat once per view, spatial ones
(e.g. an inpainting model's concat latent) are cut like the latent, and SDXL's crop coordinates
name where each local window sits in the phase.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from .views import View


class CropColumns:
    """SDXL's crop-coordinate micro-conditioning inside the vector condition.

    The vector is [pooled text | original size | crop top, left | target size], each size number embedded
    in `dim` columns (A1111 and Forge alike), so the crop columns are the second-to-last 2 * dim.
    """

    def __init__(self, embed: Callable[[torch.Tensor], torch.Tensor], dim: int):
        self.embed, self.width = embed, 2 * dim

    def apply(self, vector: torch.Tensor, views: Sequence[View], rows: int) -> torch.Tensor:
        out = vector.repeat(len(views), 1)
        start = vector.shape[1] - 2 * self.width
        for i, v in enumerate(views):
            if v.kind == "local":        # global views keep the prompt's own crop (0, 0 by default)
                coords = torch.tensor([[max(0, v.top) * 8.0, max(0, v.left) * 8.0]], device=vector.device)
                with torch.no_grad():
                    embedded = self.embed(coords.flatten()).reshape(1, -1)
                out[i * rows:(i + 1) * rows, start:start + self.width] = embedded.to(vector.dtype)
        return out


def split_cond(cond, views: Sequence[View], rows: int, latent_hw, crop: CropColumns | None = None,
               vector_key: str = "vector"):
    """`cond` (tensors, dicts and lists of them, for `rows` rows) for the stacked `views`."""
    n = len(views)

    def one(value, key=None):
        if isinstance(value, dict):
            return {k: one(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [one(v) for v in value]
        if not isinstance(value, torch.Tensor) or value.ndim == 0 or value.shape[0] != rows:
            return value
        if key == vector_key and crop is not None and value.ndim == 2:
            return crop.apply(value, views, rows)
        if value.ndim == 4 and tuple(value.shape[-2:]) == tuple(latent_hw) and tuple(latent_hw) != (1, 1):
            return torch.cat([v.extract(value) for v in views])
        return value.repeat(n, *([1] * (value.ndim - 1)))
    return one(cond)
