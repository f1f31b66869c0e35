"""What DemoFusion refuses before any work, on every host, with a message naming the problem and the fix."""
from __future__ import annotations

from modules import sd_samplers, shared

from ..phases import plan_phases
from ..settings import LATENT, DemoFusionSettings
from ..speed import FAST_UPSCALER

# Samplers whose state cannot be mixed per step (measured; see docs/HOSTS.md)
UNSUPPORTED_SAMPLERS = {
    "DPM adaptive": "its step count depends on the data and rejected steps repeat evaluations",
    "DPM fast": "its internal steps have a varying number of evaluations with no step boundary the extension can see",
    "UniPC": "it rebuilds its state from values computed before the model call, so the skip residual cannot reach it",
    # Forge only
    "HeunPP2": "it makes one, two or three model evaluations per step, so no step boundary is visible to the extension",
    # Forge Neo ("Flux Realistic" when its forbidden-knowledge option is on)
    "DPM++ 2s a RF": "it is a rectified-flow sampler (its steps assume sigmas between 0 and 1, as Flux has) that makes "
                     "two model evaluations per step without marking them as one step",
}


class DemoFusionError(ValueError):
    """A request DemoFusion cannot run; the message names the problem and the fix."""


def supported_samplers() -> list[str]:
    return [s.name for s in sd_samplers.all_samplers if s.name not in UNSUPPORTED_SAMPLERS]


def native_size(model) -> int:
    """The side the model was trained at: what Width and Height should be."""
    return 1024 if getattr(model, "is_sdxl", False) else 768 if getattr(model, "is_sd2", False) else 512


def size_of(phase) -> str:
    return f"{phase.width * 8}x{phase.height * 8}"


def check_size(p, settings: DemoFusionSettings) -> None:
    """Refuse sizes that cannot be saved, or whose phase 1 alone would take hours, before any work."""
    final = plan_phases(p.height // 8, p.width // 8, settings.scale)[-1]
    megapixels = final.width * final.height * 64 / 1e6
    limit = float(getattr(shared.opts, "img_max_size_mp", 200) or 200)
    if megapixels > limit:
        raise DemoFusionError(f"DemoFusion's output {size_of(final)} ({megapixels:.0f} MP) is above the WebUI's Maximum "
                              f"image size ({limit:g} MP, Settings > Saving images/grids): lower Scale or Width x "
                              f"Height, or raise that setting.")
    native = native_size(p.sd_model)
    if max(p.width, p.height) > 2 * native:
        raise DemoFusionError(f"Width x Height {p.width}x{p.height} is far above this model's native size ({native} px), "
                              f"where DemoFusion's phase 1 and every window would repeat the picture: set them near "
                              f"{native} x {native} and let Scale set the final size.")


def host_upscaler_names() -> list[str]:
    return [u.name for u in shared.sd_upscalers if u.name not in ("None", LATENT)]


def upscaler_names() -> list[str]:
    """The Phase upscaler choices: DemoFusion's latent enlargement, Lanczos (Fast's; our own where the host lists only
    upscaler models, as Forge Neo), then every upscaler the WebUI lists."""
    names = host_upscaler_names()
    return [LATENT] + ([FAST_UPSCALER] if FAST_UPSCALER not in names else []) + names


def check_request(p, settings: DemoFusionSettings) -> None:
    """Refuse, before any sampling, what DemoFusion cannot do on any host."""
    check_size(p, settings)
    if settings.upscaler not in upscaler_names():
        raise DemoFusionError(f"DemoFusion's Phase upscaler '{settings.upscaler}' is not one of this WebUI's "
                              f"upscalers: choose one of: {', '.join(upscaler_names())}.")
    config = sd_samplers.find_sampler_config(p.sampler_name)
    name = config.name if config else p.sampler_name
    if name in UNSUPPORTED_SAMPLERS:
        raise DemoFusionError(f"DemoFusion cannot use the sampler '{name}': {UNSUPPORTED_SAMPLERS[name]}. "
                              f"Choose one of: {', '.join(supported_samplers())}.")
    if getattr(p, "enable_hr", False):
        raise DemoFusionError("DemoFusion and Hires. fix both enlarge the image: turn off Hires. fix "
                              "(DemoFusion's scale sets the final size).")
    if getattr(p, "refiner_checkpoint", None) not in (None, "", "None"):
        raise DemoFusionError("DemoFusion does not support the Refiner: turn the Refiner off.")
    if getattr(p, "image_mask", None) is not None:
        raise DemoFusionError("DemoFusion cannot inpaint: remove the mask (use the img2img tab without a mask "
                              "to enlarge the whole picture).")


def refuse(p, error: Exception) -> None:
    """Make the request fail with `error` at its first sampling (scripts' process() errors are only logged)."""
    def sample(*args, **kwargs):
        raise error
    p.sample = sample
