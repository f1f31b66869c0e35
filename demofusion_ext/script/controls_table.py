"""The README's controls table, made from the settings table (tests/test_settings_table.py keeps the README in step).

`python -m demofusion_ext.script.controls_table` prints it."""
from __future__ import annotations

from ..settings import CHANGED, SETTINGS, Setting

GROUPS = {"speed": "", "main": "", "upscaling": "", "repetition": "", "advanced": "Advanced: "}


def _value(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f"`{value}`"
    return f"{value:g}"


def _allowed(s: Setting) -> str:
    if s.limit.kind is bool:
        return "true / false"
    if s.choices == "upscalers":
        return "`Latent` or an upscaler's name (`GET /sdapi/v1/upscalers`)"
    if isinstance(s.choices, tuple):
        return " / ".join(f"`{c}`" for c in s.choices)
    text = f"{s.limit.low:g} .. {s.limit.high:g}"
    if s.limit.multiple_of > 1:
        return f"{text}, a multiple of {s.limit.multiple_of}"
    return text + (" (whole numbers)" if s.limit.kind is int else "")


def _notes(s: Setting) -> str:
    notes = []
    if s.axis:
        notes.append(f"X/Y/Z axis `[DemoFusion] {s.axis}`")
    if s.written_when == CHANGED:
        notes.append("in PNG info only while not the default")
    elif s.written_when:
        notes.append("in PNG info only while " + ("on" if s.written_when == s.name else f"`{s.written_when}` is on"))
    if s.aliases:
        notes.append("also accepted as " + ", ".join(f"`{a}`" for a in s.aliases))
    return "; ".join(notes)


def controls_table() -> str:
    rows = ["| control | API name | default | allowed | PNG info key | what it does | notes |",
            "|---|---|---|---|---|---|---|",
            "| DemoFusion (accordion) | `enabled` | false | true / false | `DemoFusion` | turn DemoFusion on | |"]
    for s in SETTINGS:
        rows.append(f"| {GROUPS[s.group]}{s.label} | `{s.name}` | {_value(s.default)} | {_allowed(s)} | `{s.key}` "
                    f"| {s.help} | {_notes(s)} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(controls_table())
