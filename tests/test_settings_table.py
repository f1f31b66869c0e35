"""The settings table is the one source: the README's controls table, the PNG-info round trip and the dataclass all
follow from it (the UI the WebUI serves is compared with it in tests/webui/test_settings_table_ui.py)."""
import dataclasses
import pathlib

import pytest

from demofusion_ext.script.arguments import ENABLED_KEY, infotext_items, parse_args, paste_reader
from demofusion_ext.script.controls_table import controls_table
from demofusion_ext.settings import BY_NAME, SETTINGS, DemoFusionSettings

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
MARK = "<!-- controls table: generated from demofusion_ext/settings.py; do not edit by hand -->"


def test_the_readme_controls_table_is_the_generated_one():
    text = README.read_text()
    assert MARK in text, "README lost the controls table's marker"
    block = text.split(MARK, 1)[1].lstrip("\n").split("\n\n", 1)[0].strip()
    assert block == controls_table(), ("README's controls table differs from the settings table: paste the output "
                                       "of `python -m demofusion_ext.script.controls_table` under the marker")


def test_the_dataclass_has_one_field_per_row_with_its_default():
    fields = dataclasses.fields(DemoFusionSettings)
    assert [f.name for f in fields] == [s.name for s in SETTINGS]
    assert all(f.default == s.default and type(f.default) is s.limit.kind for f, s in zip(fields, SETTINGS))


def test_every_default_is_allowed_and_every_slider_step_divides_its_range():
    DemoFusionSettings(**{s.name: s.default for s in SETTINGS})
    for s in SETTINGS:
        if s.limit.kind in (int, float):
            span = (s.limit.high - s.limit.low) / s.step
            assert abs(span - round(span)) < 1e-9, s.name


NON_DEFAULT = {"scale": 3.5, "stride": 0.25, "view_batch_size": 4, "cosine_scale_1": 2.5, "cosine_scale_2": 0.5,
               "cosine_scale_3": 2.0, "sigma": 1.2, "random_jitter": False, "phase_denoise": 0.6,
               "decode_tile_size": 512, "phase_images": True, "upscaler": "Lanczos", "view_prompts": True,
               "prompt_keep_threshold": 0.45, "window_interaction": True, "speed": "Fast", "region_noise": 0.7,
               "global_cutoff": 0.08}


def as_the_webui_parses(settings) -> dict:
    """The infotext dict the WebUI hands to paste: every value a string."""
    return {k: str(v) for k, v in infotext_items(settings).items()}


def test_paste_gives_back_every_value():
    assert set(NON_DEFAULT) == set(BY_NAME)
    pasted = as_the_webui_parses(DemoFusionSettings(**NON_DEFAULT))
    for name, value in NON_DEFAULT.items():
        reader = paste_reader(name)
        got = reader(pasted) if callable(reader) else BY_NAME[name].limit.kind(
            float(pasted[reader]) if BY_NAME[name].limit.kind is int else pasted[reader])
        assert got == value, name


def test_an_optional_key_missing_from_a_demofusion_infotext_reads_as_off():
    pasted = as_the_webui_parses(DemoFusionSettings())
    assert ENABLED_KEY in pasted and "DemoFusion per-view prompts" not in pasted
    assert paste_reader("view_prompts")(pasted) is False
    assert paste_reader("prompt_keep_threshold")(pasted) == 0.3
    assert paste_reader("view_prompts")({"Steps": "4"}) is None          # not a DemoFusion image: left alone


def test_the_earlier_api_name_of_per_view_prompts_still_works():
    assert parse_args([{"patch_prompts": True}])[1].view_prompts is True
    assert DemoFusionSettings.from_dict({"patch_prompts": True}).view_prompts is True
    with pytest.raises(ValueError, match="'view_prompts' = 'on'"):
        parse_args([{"patch_prompts": "on"}])
