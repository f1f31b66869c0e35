"""Forge Classic (Haoming02/sd-webui-forge-classic, branch `classic`): Forge's UNet function wrapper on the older
`ldm_patched` backend, with A1111's sgm model objects. Only the names differ from Forge 2 (docs/HOSTS.md, "Forge
hosts compared")."""
from __future__ import annotations

from .crop_embedders import sgm_crop_columns
from .forge import Forge


class ForgeClassic(Forge):
    name = "Forge Classic"

    def crop_columns(self, model):
        # sd_model is A1111's sgm DiffusionEngine: the conditioner's crop embedder, as on A1111
        return sgm_crop_columns(model)

    def controlnet_class(self) -> type:
        from ldm_patched.modules.controlnet import ControlNet
        return ControlNet

    def sigma_timestep(self, unet):
        return unet.model.model_sampling
