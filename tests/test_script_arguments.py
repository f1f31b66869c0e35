import pytest

from demofusion_ext.script.arguments import ARG_NAMES, INFOTEXT_KEYS, infotext_items, parse_args
from demofusion_ext.settings import DemoFusionSettings


def test_positional_in_ui_order_and_named_dict_agree():
    pos = [True, 3, 0.25, 8, 2.0, 1.0, 1.0, 1.0, False, 0.9, 512, True, "Lanczos", True, 0.4, True, "Fast", 0.8, 0.1]
    assert len(pos) == len(ARG_NAMES) == len(INFOTEXT_KEYS)
    named = dict(zip(ARG_NAMES, pos))
    assert parse_args(pos) == parse_args([named])
    enabled, s = parse_args([{"enabled": True, "scale": 2.5}])
    assert enabled and s.scale == 2.5 and s.view_batch_size == 16 and s.upscaler == "Latent"
    assert parse_args(pos)[1].upscaler == "Lanczos"


def test_disabled_needs_no_valid_settings():
    assert parse_args([False]) == (False, None)
    assert parse_args([]) == (False, None)
    assert parse_args([{"enabled": False, "scale": 99}]) == (False, None)


def test_a_dict_of_settings_without_enabled_turns_demofusion_on():
    """As ControlNet's unit dicts: {"scale": 3} is not silently ignored."""
    enabled, s = parse_args([{"scale": 3}])
    assert enabled and s.scale == 3
    with pytest.raises(ValueError, match="'scale' = 20"):
        parse_args([{"scale": 20}])


@pytest.mark.parametrize("args,message", [
    ([{"enabled": True, "scael": 3}], "unknown DemoFusion argument(s) 'scael'"),
    ([{"enabled": "yes"}], "'enabled' = 'yes': expected true or false"),
    ([{"enabled": True, "scale": "3"}], "'scale' = '3': expected a number"),
    ([{"enabled": True, "scale": 12}], "'scale' = 12.0 is out of range"),
    ([{"enabled": True, "view_batch_size": 2.5}], "'view_batch_size' = 2.5"),
    ([True] + [2] * 20, "at most 19 positional arguments"),
    ([{"speed": "Turbo"}], "'speed' = 'Turbo': expected one of Exact, Fast"),
    ([{"upscaler": None}], "'upscaler' = None: expected a name"),
])
def test_bad_arguments_are_named(args, message):
    with pytest.raises(ValueError) as e:
        parse_args(args)
    assert message in str(e.value)


def test_slider_floats_are_accepted_for_ints():
    assert parse_args([True, 2.0, 0.5, 4.0])[1].view_batch_size == 4


def test_anti_repetition_keys_are_written_only_when_on():
    """A generation with them off keeps the PNG info it had before they existed."""
    off = infotext_items(DemoFusionSettings())
    assert list(off)[0] == "DemoFusion" and list(off)[-1] == "DemoFusion upscaler"
    assert not any("prompt" in k or "interaction" in k for k in off)
    on = infotext_items(DemoFusionSettings(view_prompts=True, prompt_keep_threshold=0.4))
    assert on["DemoFusion per-view prompts"] is True and on["DemoFusion prompt keep threshold"] == 0.4
    assert "DemoFusion window interaction" not in on
    assert infotext_items(DemoFusionSettings(window_interaction=True))["DemoFusion window interaction"] is True
