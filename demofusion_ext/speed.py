"""Speed: Exact (DemoFusion as published) or Fast, four training-free shortcuts of its successors (docs/ALGORITHM.md
section 7), each a setting of its own that the choice only presets.

Fast: a relay start in the enlarged phases (Phase denoising strength 0.6, the last 60% of the steps: FreeScale,
LSRNA), a pixel-space Phase upscaler (Lanczos unless one was picked: LSRNA, FreeScale, MegaFusion), region-wise
noise (LSRNA) and no global views in the steps whose global weight is below 0.05 (global_cutoff.py).
"""
from __future__ import annotations

from .settings import LATENT, SPEEDS

EXACT, FAST = SPEEDS
FAST_UPSCALER = "Lanczos"          # a WebUI built-in on every host

PRESETS = {
    EXACT: {"phase_denoise": 1.0, "upscaler": LATENT, "region_noise": 0.0, "global_cutoff": 0.0},
    FAST: {"phase_denoise": 0.6, "upscaler": FAST_UPSCALER, "region_noise": 1.2, "global_cutoff": 0.05},
}


def speed_preset(speed: str, upscaler: str = LATENT) -> dict:
    """The settings a Speed choice sets; Fast keeps a pixel upscaler already picked. An unknown name sets nothing
    (validation names it)."""
    values = dict(PRESETS.get(speed, {}))
    if speed == FAST and upscaler != LATENT:
        values["upscaler"] = upscaler
    return values


def relays(settings) -> bool:
    """Whether an enlarged phase runs only the last `strength` share of its steps (Fast) rather than all of its steps
    over a shortened schedule (Exact, the WebUI's "do exactly the steps the slider specifies")."""
    return settings.speed == FAST
