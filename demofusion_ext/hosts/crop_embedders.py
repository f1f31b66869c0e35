"""Where an SDXL model embeds the crop coordinates of its vector condition `y`: the two places the hosts use."""
from __future__ import annotations

from ..view_conditioning import CropColumns


def sgm_crop_columns(model) -> CropColumns | None:
    """A1111 and Forge Classic (sgm's DiffusionEngine): the conditioner's crop-coordinate embedder."""
    for emb in getattr(getattr(model, "conditioner", None), "embedders", []):
        if getattr(emb, "input_key", None) == "crop_coords_top_left":
            return CropColumns(lambda t, emb=emb: emb(t.view(1, -1)), emb.outdim)
    return None


def forge_crop_columns(model) -> CropColumns | None:
    """Forge 2 and Neo: `sd_model.embedder`, a 256-wide timestep embedding of each size number."""
    embedder = getattr(model, "embedder", None) if model.is_sdxl else None
    return CropColumns(embedder, embedder.dim) if embedder is not None else None
