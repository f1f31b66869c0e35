"""The script's arguments: positional in the settings table's order, or one dict of named arguments (WebUI API);
their PNG-info entries, and how a pasted PNG info sets each control back. Host-agnostic, so the same parsing
serves every WebUI adapter."""
from __future__ import annotations

from ..settings import ALIASES, BY_NAME, LATENT, SETTINGS, SPEEDS, DemoFusionSettings
from ..speed import speed_preset

ENABLED_KEY = "DemoFusion"
ARG_NAMES = ["enabled"] + [s.name for s in SETTINGS]
INFOTEXT_KEYS = {"enabled": ENABLED_KEY, **{s.name: s.key for s in SETTINGS}}
# keys written only while an option is on: a generation without them has the PNG info it had before they existed
OPTIONAL_INFOTEXT_KEYS = [s.key for s in SETTINGS if s.written_when]


def infotext_items(settings: DemoFusionSettings) -> dict:
    """The PNG-info entries of enabled DemoFusion settings."""
    values = settings.as_dict()
    out = {ENABLED_KEY: True}
    for s in SETTINGS:
        if s.written(values):
            out[s.key] = values[s.name]
    return out


def paste_reader(name: str):
    """What a pasted PNG info gives the control of `name`: the key itself (the WebUI converts the text), or a
    reader where the WebUI's conversion would be wrong: true/false (bool("False") is True), and an optional key
    that a DemoFusion infotext lacks, which means the option was off (its default)."""
    s = BY_NAME[name]
    if s.limit.kind is not bool and s.written_when is None:
        return s.key

    def read(d: dict):
        if s.key not in d:
            return s.default if s.written_when and ENABLED_KEY in d else None
        return str(d[s.key]).lower() == "true" if s.limit.kind is bool else s.limit.kind(d[s.key])
    return read


def _coerce(name: str, value):
    """UI sliders may send 16.0 for an int, the API "fast" for Fast; anything else keeps its type so validation can
    name it."""
    kind, names = BY_NAME[name].limit.kind, BY_NAME[name].choices
    if isinstance(names, tuple) and isinstance(value, str):
        return next((n for n in names if n.lower() == value.strip().lower()), value)
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
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
        named = {ALIASES.get(k, k): v for k, v in args[0].items()}
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
    named = {k: _coerce(k, v) for k, v in named.items()}
    if args and isinstance(args[0], dict):            # named arguments: Speed fills the settings they do not name
        named = {**speed_preset(named.get("speed", SPEEDS[0])), **named}
    return True, DemoFusionSettings.from_dict(named)


def with_overrides(args, values: dict) -> list:
    """The arguments with `values` (e.g. an X/Y/Z plot cell's) put over them, as one dict that turns DemoFusion on.
    A cell's Speed sets its preset's settings over the arguments', unless the cell names them too."""
    named = dict(args[0]) if args and isinstance(args[0], dict) else dict(zip(ARG_NAMES, args))
    if "speed" in values:
        named.update(speed_preset(_coerce("speed", values["speed"]), named.get("upscaler", LATENT)))
    named.update(values, enabled=True)
    return [named]
