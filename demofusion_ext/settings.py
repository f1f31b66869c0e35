"""DemoFusion settings: one table row per setting, from which everything else follows.

The row gives the name (field and API name), default, allowed values, UI label and help, PNG-info key, whether
the key is written only while an option is on, and the X/Y/Z axis. `DemoFusionSettings`, its validation, the
script's positional argument order, the PNG-info keys and paste, the X/Y/Z axes, the accordion's controls and
the README's controls table are all made from `SETTINGS` (see demofusion_ext/script/). Adding a setting is one
row here plus its behaviour. Rows are never reordered: their order is the API's positional order.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

LATENT = "Latent"      # the phase upscaler that enlarges the latent itself (bicubic), as the paper
CHANGED = "changed"    # Setting.written_when: in the PNG info only while not the default
SPEEDS = ("Exact", "Fast")


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


@dataclass(frozen=True)
class Setting:
    name: str                   # the field, and the API's named argument
    default: object
    limit: Limit
    label: str                  # the UI control's label (the README's "control" column)
    help: str                   # the UI control's info text
    key: str                    # the PNG-info key
    step: float = 0             # slider step (numbers)
    group: str = "main"         # where the accordion shows it: speed, main, upscaling, repetition or advanced
    written_when: str | None = None   # PNG info only while this bool setting is on, or CHANGED: while the value is
    #                                   not the default (None: always written)
    axis: str | None = None     # X/Y/Z axis name, shown as "[DemoFusion] <axis>"
    choices: str | tuple[str, ...] | None = None  # str settings: a list the host supplies ("upscalers"), or the names
    aliases: tuple[str, ...] = ()     # earlier API names still accepted

    def written(self, values: dict) -> bool:
        """Whether the PNG info carries this setting, given all the settings' values."""
        if self.written_when is None:
            return True
        if self.written_when == CHANGED:
            return values[self.name] != self.default
        return bool(values[self.written_when])


def _number(name, default, low, high, step, label, help, key, kind=float, multiple_of=1, **kw) -> Setting:
    return Setting(name, kind(default), Limit(low, high, kind, multiple_of), label, help, key, step=step, **kw)


def _flag(name, default, label, help, key, **kw) -> Setting:
    return Setting(name, default, Limit(0, 1, bool), label, help, key, **kw)


SETTINGS: tuple[Setting, ...] = (
    _number("scale", 2, 1, 8, 0.5, "Scale", "Final size as a multiple of Width x Height; each whole step is one "
            "more phase", "DemoFusion scale", axis="Scale"),
    _number("stride", 0.5, 0.125, 1, 0.125, "Window stride", "How far local windows move, as a fraction of a "
            "window: smaller = more overlap, fewer seams, slower", "DemoFusion stride", axis="Window stride"),
    _number("view_batch_size", 16, 1, 64, 1, "View batch size", "Views per model call: higher is faster and uses "
            "more VRAM", "DemoFusion view batch size", kind=int, group="advanced"),
    _number("cosine_scale_1", 3, 0, 10, 0.1, "Skip residual strength (cosine scale 1)", "Higher lets go of the "
            "previous phase sooner", "DemoFusion cosine scale 1", group="advanced"),
    _number("cosine_scale_2", 1, 0, 10, 0.1, "Global view weight (cosine scale 2)", "Higher hands over to the "
            "local windows sooner", "DemoFusion cosine scale 2", group="advanced"),
    _number("cosine_scale_3", 1, 0, 10, 0.1, "Blur fade (cosine scale 3)", "Higher sharpens the global views "
            "sooner", "DemoFusion cosine scale 3", group="advanced"),
    _number("sigma", 0.8, 0.1, 5, 0.1, "Global blur (sigma)", "Blur of the dilated global views: higher keeps the "
            "composition smoother", "DemoFusion sigma", axis="Sigma"),
    _flag("random_jitter", True, "Random window jitter", "Move windows a little at every step: fewer seams",
          "DemoFusion jitter", group="advanced"),
    _number("phase_denoise", 1, 0.05, 1, 0.05, "Phase denoising strength", "How much each enlarged phase may "
            "repaint: 1 = all of it (as the paper)", "DemoFusion phase denoise"),
    _number("decode_tile_size", 1024, 256, 4096, 64, "VAE decode tile (px)", "Lower uses less VRAM when decoding "
            "large images", "DemoFusion decode tile", kind=int, multiple_of=64, group="advanced"),
    _flag("phase_images", False, "Also return the image of each earlier phase", "Earlier phases follow the final "
          "image in the gallery and the API's images", "DemoFusion phase images", group="upscaling"),
    Setting("upscaler", LATENT, Limit(0, 0, str), "Phase upscaler", "How each finished phase is enlarged for the "
            "next: Latent (DemoFusion's own) or an upscaler on the decoded picture (keeps an img2img picture's "
            "detail)", "DemoFusion upscaler", group="upscaling", axis="Phase upscaler", choices="upscalers"),
    _flag("view_prompts", False, "Per-view prompts (fewer repeated objects)", "Each window keeps only the prompt "
          "words phase 1 drew in its area (AccDiffusion)", "DemoFusion per-view prompts", group="repetition",
          written_when="view_prompts", axis="Per-view prompts", aliases=("patch_prompts",)),
    _number("prompt_keep_threshold", 0.3, 0, 1, 0.05, "Prompt keep threshold", "Share of a window a word must "
            "cover to stay in its prompt", "DemoFusion prompt keep threshold", group="repetition",
            written_when="view_prompts", axis="Prompt keep threshold"),
    _flag("window_interaction", False, "Window interaction", "The dilated global views exchange values at every "
          "step", "DemoFusion window interaction", group="repetition", written_when="window_interaction",
          axis="Window interaction"),
    Setting("speed", SPEEDS[0], Limit(0, 0, str), "Speed", "Fast skips work of small weight for about 40% fewer "
            "model evaluations (see the README); it sets the four controls it names, which stay editable",
            "DemoFusion speed", group="speed", written_when=CHANGED, axis="Speed", choices=SPEEDS),
    _number("region_noise", 0, 0, 2, 0.1, "Region-wise noise", "Noise added to each enlarged phase's start, up to "
            "this much where the picture has edges and none where it is flat (LSRNA): room to sharpen detail; "
            "0 = off", "DemoFusion region noise", group="upscaling", written_when=CHANGED, axis="Region-wise noise"),
    _number("global_cutoff", 0, 0, 0.5, 0.01, "Global view cut-off", "A step whose global-view weight (from cosine "
            "scale 2) is below this evaluates only the local windows, and one within it of 1 only the global views; "
            "0 = exact", "DemoFusion global cutoff", group="advanced", written_when=CHANGED,
            axis="Global view cut-off"),
)
BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
ALIASES: dict[str, str] = {alias: s.name for s in SETTINGS for alias in s.aliases}
# Field name -> allowed values (the public name the engine API has always had)
LIMITS: dict[str, Limit] = {s.name: s.limit for s in SETTINGS}


class _Validated:
    def __post_init__(self):
        for f in dataclasses.fields(self):
            check(f.name, getattr(self, f.name))

    @classmethod
    def from_dict(cls, values: dict) -> "DemoFusionSettings":
        values = {ALIASES.get(k, k): v for k, v in values.items()}
        unknown = sorted(set(values) - set(BY_NAME))
        if unknown:
            raise ValueError(f"unknown DemoFusion setting(s) {', '.join(map(repr, unknown))}; "
                             f"known: {', '.join(BY_NAME)}")
        return cls(**values)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


DemoFusionSettings = dataclasses.make_dataclass(
    "DemoFusionSettings", [(s.name, s.limit.kind, dataclasses.field(default=s.default)) for s in SETTINGS],
    bases=(_Validated,), frozen=True, namespace={"__module__": __name__})
DemoFusionSettings.__doc__ = ("Everything that shapes a DemoFusion generation beyond what the host's own sampler "
                              "decides; validated on creation. Fields:\n" +
                              "\n".join(f"    {s.name} = {s.default!r}: {s.label}. {s.help}" for s in SETTINGS))


def check(name: str, value):
    """Raise ValueError naming the field, the value and the allowed range when `value` does not fit."""
    limit = LIMITS[name]
    allowed = limit.describe()
    if limit.kind in (bool, str):
        if not isinstance(value, limit.kind) or (limit.kind is str and not value.strip()):
            raise ValueError(f"DemoFusion setting '{name}' = {value!r}: expected {allowed}")
        names = BY_NAME[name].choices
        if isinstance(names, tuple) and value not in names:
            raise ValueError(f"DemoFusion setting '{name}' = {value!r}: expected one of {', '.join(names)}")
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"DemoFusion setting '{name}' = {value!r}: expected a number, {allowed}")
    if limit.kind is int and value != int(value):
        raise ValueError(f"DemoFusion setting '{name}' = {value!r}: expected {allowed}")
    if not math.isfinite(value) or not limit.low <= value <= limit.high:
        raise ValueError(f"DemoFusion setting '{name}' = {value!r} is out of range: allowed {allowed}")
    if limit.kind is int and int(value) % limit.multiple_of:
        raise ValueError(f"DemoFusion setting '{name}' = {value!r}: expected {allowed}")
