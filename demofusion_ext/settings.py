"""DemoFusion settings: defaults from the official pipeline, and validation with messages users can act on."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    low: float
    high: float
    kind: type = float          # int, float, bool or str
    multiple_of: int = 1        # for int fields

    def describe(self) -> str:
        if self.kind is bool:
            return "true or false"
        if self.kind is str:
            return "a name"
        text = f"{self.low:g} .. {self.high:g}"
        if self.kind is int:
            text = f"a whole number in {text}" + (f", a multiple of {self.multiple_of}" if self.multiple_of > 1 else "")
        return text


LATENT = "Latent"      # the phase upscaler that enlarges the latent itself (bicubic), as the paper

# Field name -> allowed values. The names are also the API's named arguments.
LIMITS: dict[str, Limit] = {
    "scale": Limit(1.0, 8.0),
    "stride": Limit(0.125, 1.0),
    "view_batch_size": Limit(1, 64, int),
    "cosine_scale_1": Limit(0.0, 10.0),
    "cosine_scale_2": Limit(0.0, 10.0),
    "cosine_scale_3": Limit(0.0, 10.0),
    "sigma": Limit(0.1, 5.0),
    "random_jitter": Limit(0, 1, bool),
    "phase_denoise": Limit(0.05, 1.0),
    "decode_tile_size": Limit(256, 4096, int, 64),
    "phase_images": Limit(0, 1, bool),
    "upscaler": Limit(0, 0, str),     # the host checks the name against its upscalers
    "patch_prompts": Limit(0, 1, bool),
    "prompt_keep_threshold": Limit(0.0, 1.0),
    "window_interaction": Limit(0, 1, bool),
}


@dataclass(frozen=True)
class DemoFusionSettings:
    """Everything that shapes a DemoFusion generation beyond what the host's own sampler decides.

    scale           final size as a multiple of the base (phase-1) size; non-integer adds a last phase at it
    stride          local window stride as a fraction of the window (0.5 = the official half-window stride)
    view_batch_size views (local and global) evaluated per model call
    cosine_scale_1  alpha1: how long the skip residual keeps the previous phase's structure
    cosine_scale_2  alpha2: how long the dilated (global) paths dominate the local windows
    cosine_scale_3  alpha3: how fast the blur of the dilated paths fades
    sigma           blur strength of the dilated paths (0.8 in the official demos, 1.0 the pipeline default)
    random_jitter   move the local windows by a seeded random offset at every evaluation (fewer seams)
    phase_denoise   how much of each phase's schedule runs (1 = from full noise, as the paper)
    decode_tile_size VAE decoder tile, in output pixels
    phase_images    also return the image of each finished phase
    upscaler        how a finished phase is enlarged for the next: "Latent" (DemoFusion's bicubic latent
                    enlargement) or the name of a host upscaler applied to the decoded picture
    patch_prompts   per-view prompts (AccDiffusion): each local window keeps only the prompt words whose phase-1
                    cross-attention covers at least `prompt_keep_threshold` of it
    prompt_keep_threshold  the share of a window a word's attention mask must cover for the word to stay (c)
    window_interaction  the dilated global views swap their values per channel and cell before each model call,
                    and swap the predictions back (AccDiffusion's window interaction)
    """

    scale: float = 2.0
    stride: float = 0.5
    view_batch_size: int = 16
    cosine_scale_1: float = 3.0
    cosine_scale_2: float = 1.0
    cosine_scale_3: float = 1.0
    sigma: float = 0.8
    random_jitter: bool = True
    phase_denoise: float = 1.0
    decode_tile_size: int = 1024
    phase_images: bool = False
    upscaler: str = LATENT
    patch_prompts: bool = False
    prompt_keep_threshold: float = 0.3
    window_interaction: bool = False

    def __post_init__(self):
        for f in dataclasses.fields(self):
            check(f.name, getattr(self, f.name))

    @classmethod
    def from_dict(cls, values: dict) -> "DemoFusionSettings":
        unknown = sorted(set(values) - set(LIMITS))
        if unknown:
            raise ValueError(f"unknown DemoFusion setting(s) {', '.join(map(repr, unknown))}; "
                             f"known: {', '.join(LIMITS)}")
        return cls(**values)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def check(name: str, value):
    """Raise ValueError naming the field, the value and the allowed range when `value` does not fit."""
    limit = LIMITS[name]
    allowed = limit.describe()
    if limit.kind in (bool, str):
        if not isinstance(value, limit.kind) or (limit.kind is str and not value.strip()):
            raise ValueError(f"DemoFusion setting '{name}' = {value!r}: expected {allowed}")
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"DemoFusion setting '{name}' = {value!r}: expected a number, {allowed}")
    if limit.kind is int and value != int(value):
        raise ValueError(f"DemoFusion setting '{name}' = {value!r}: expected {allowed}")
    if not math.isfinite(value) or not limit.low <= value <= limit.high:
        raise ValueError(f"DemoFusion setting '{name}' = {value!r} is out of range: allowed {allowed}")
    if limit.kind is int and int(value) % limit.multiple_of:
        raise ValueError(f"DemoFusion setting '{name}' = {value!r}: expected {allowed}")
