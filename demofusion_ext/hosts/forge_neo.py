"""Forge Neo (Haoming02/sd-webui-forge-classic, branch `neo`): Forge 2's backend carried forward, with many more model
families (Flux, Chroma, Z-Image, Qwen-Image, Wan, ...) that DemoFusion cannot cut into views, and memory planned
by `unet.memory_required` alone (docs/HOSTS.md, "Forge hosts compared")."""
from __future__ import annotations

from .forge import Forge
from .refusals import DemoFusionError

# Neo's model guesses (huggingface_guess model_list) whose UNet DemoFusion runs: SD1 and SDXL, eps or v-prediction
SUPPORTED = {"SD15": "SD1.x", "SDXL": "SDXL"}


class ForgeNeo(Forge):
    name = "Forge Neo"

    def check_model(self, p) -> None:
        model = p.sd_model
        family = type(getattr(model, "model_config", None)).__name__
        prediction = getattr(model.forge_objects.unet.model.predictor, "prediction_type", None)
        if family not in SUPPORTED or prediction not in ("epsilon", "v_prediction"):
            raise DemoFusionError(f"DemoFusion supports SD1.x and SDXL checkpoints, not this {family} model "
                                  f"({type(model).__name__}, {prediction} prediction): load an SD1.x or SDXL "
                                  f"checkpoint, or turn DemoFusion off.")

    def plan_memory(self, unet, modifier) -> None:
        # Neo's sampler asks the installed patcher's memory_required (no estimation-modifier option); a clone does not
        # keep an instance one, so the estimate is the phase patcher's (`parent`): another extension's, if it set one
        unet.memory_required = modifier(unet.parent.memory_required)
