"""The script's arguments: positional in UI order, or one dict of named arguments (WebUI API), and
their PNG-info keys. Host-agnostic so the same parsing serves every WebUI adapter."""
from __future__ import annotations

from .settings import LIMITS, DemoFusionSettings

ARG_NAMES = ["enabled"] + list(LIMITS)
INFOTEXT_KEYS = {
    "enabled": "DemoFusion",
    "scale": "DemoFusion scale",
    "stride": "DemoFusion stride",
    "view_batch_size": "DemoFusion view batch size",
    "cosine_scale_1": "DemoFusion cosine scale 1",
    "cosine_scale_2": "DemoFusion cosine scale 2",
    "cosine_scale_3": "DemoFusion cosine scale 3",
    "sigma": "DemoFusion sigma",
    "random_jitter": "DemoFusion jitter",
    "phase_denoise": "DemoFusion phase denoise",
    "decode_tile_size": "DemoFusion decode tile",
    "phase_images": "DemoFusion phase images",
    "upscaler": "DemoFusion upscaler",
    "patch_prompts": "DemoFusion per-view prompts",
    "prompt_keep_threshold": "DemoFusion prompt keep threshold",
    "window_interaction": "DemoFusion window interaction",
}
# written to the infotext only when on (patch_prompts, window_interaction) or in use (the threshold), so that a
# generation without them has the PNG info it had before they existed; pasting a DemoFusion infotext without them
# turns them off
OPTIONAL_KEYS = {"patch_prompts": None, "prompt_keep_threshold": "patch_prompts", "window_interaction": None}


def infotext_items(settings: DemoFusionSettings) -> dict:
    """The PNG-info entries of enabled DemoFusion settings."""
    values = settings.as_dict()
    out = {INFOTEXT_KEYS["enabled"]: True}
    for name, value in values.items():
        if name in OPTIONAL_KEYS and not values[OPTIONAL_KEYS[name] or name]:
            continue
        out[INFOTEXT_KEYS[name]] = value
    return out


def _coerce(name: str, value):
    """UI sliders may send 16.0 for an int; anything else keeps its type so validation can name it."""
    if LIMITS[name].kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if LIMITS[name].kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def parse_args(args) -> tuple[bool, DemoFusionSettings | None]:
    """(enabled, settings) from the script args; ValueError names the argument that is wrong.

    Positional arguments are off unless the first is true; a dict of named arguments is on unless it says
    "enabled": false."""
    args = list(args)
    if args and isinstance(args[0], dict):
        if len(args) > 1 and any(a is not None for a in args[1:]) and isinstance(args[1], dict):
            raise ValueError("DemoFusion takes one dict of named arguments, or positional arguments in UI order")
        named = dict(args[0])
        unknown = sorted(set(named) - set(ARG_NAMES))
        if unknown:
            raise ValueError(f"unknown DemoFusion argument(s) {', '.join(map(repr, unknown))}; "
                             f"known: {', '.join(ARG_NAMES)}")
    else:
        if len(args) > len(ARG_NAMES):
            raise ValueError(f"DemoFusion takes at most {len(ARG_NAMES)} positional arguments "
                             f"({', '.join(ARG_NAMES)}), got {len(args)}")
        named = {n: v for n, v in zip(ARG_NAMES, args) if v is not None}
    # a dict of settings is a request to use them (as ControlNet's unit dicts): without "enabled" it turns DemoFusion on
    enabled = named.pop("enabled", bool(args) and isinstance(args[0], dict))
    if not isinstance(enabled, bool):
        raise ValueError(f"DemoFusion argument 'enabled' = {enabled!r}: expected true or false")
    if not enabled:
        return False, None
    return True, DemoFusionSettings.from_dict({k: _coerce(k, v) for k, v in named.items()})
