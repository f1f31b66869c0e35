import math

import pytest

from demofusion_ext import LIMITS, DemoFusionSettings


def test_defaults_follow_the_official_pipeline():
    s = DemoFusionSettings()
    assert (s.cosine_scale_1, s.cosine_scale_2, s.cosine_scale_3) == (3.0, 1.0, 1.0)
    assert s.stride == 0.5 and s.random_jitter and s.sigma == 0.8 and s.view_batch_size == 16
    assert s.phase_denoise == 1.0 and s.scale == 2.0 and s.upscaler == "Latent"
    assert not s.view_prompts and s.prompt_keep_threshold == 0.3 and not s.window_interaction


BAD = [
    ("scale", 0.5, "out of range: allowed 1 .. 8"),
    ("scale", 9, "out of range: allowed 1 .. 8"),
    ("scale", math.nan, "out of range"),
    ("scale", "2", "expected a number"),
    ("stride", 0.0, "allowed 0.125 .. 1"),
    ("stride", 1.5, "allowed 0.125 .. 1"),
    ("view_batch_size", 0, "a whole number in 1 .. 64"),
    ("view_batch_size", 2.5, "a whole number in 1 .. 64"),
    ("view_batch_size", True, "expected a number"),
    ("cosine_scale_1", -1, "allowed 0 .. 10"),
    ("cosine_scale_2", 11, "allowed 0 .. 10"),
    ("cosine_scale_3", -0.1, "allowed 0 .. 10"),
    ("sigma", 0, "allowed 0.1 .. 5"),
    ("random_jitter", 1, "expected true or false"),
    ("phase_denoise", 0.0, "allowed 0.05 .. 1"),
    ("decode_tile_size", 100, "a multiple of 64"),
    ("decode_tile_size", 1000, "a multiple of 64"),
    ("decode_tile_size", 8192, "256 .. 4096"),
    ("phase_images", "yes", "expected true or false"),
    ("upscaler", 4, "expected a name"),
    ("upscaler", " ", "expected a name"),
    ("view_prompts", "on", "expected true or false"),
    ("prompt_keep_threshold", 1.5, "allowed 0 .. 1"),
    ("window_interaction", 0, "expected true or false"),
    ("speed", "fast", "expected one of Exact, Fast"),
    ("region_noise", -0.1, "allowed 0 .. 2"),
    ("global_cutoff", 0.6, "allowed 0 .. 0.5"),
]


def test_every_field_has_a_bad_value_case():
    assert {name for name, _, _ in BAD} == set(LIMITS)


@pytest.mark.parametrize("name,value,message", BAD)
def test_validation_names_field_value_and_range(name, value, message):
    with pytest.raises(ValueError) as err:
        DemoFusionSettings(**{name: value})
    text = str(err.value)
    assert f"'{name}'" in text and repr(value) in text and message in text


def test_unknown_names_are_refused_with_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown DemoFusion setting\(s\) 'scael'.*known: scale"):
        DemoFusionSettings.from_dict({"scael": 2})
    assert DemoFusionSettings.from_dict({"scale": 3}).scale == 3
