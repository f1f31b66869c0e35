"""The accordion each host serves is the settings table: every control's label, default, range and step, in the API's
positional order (GET /sdapi/v1/script-info lists a script's UI arguments), on both tabs."""
from demofusion_ext.settings import SETTINGS
from webui_client import phase_upscalers


def test_the_served_controls_are_the_settings_table(webui):
    served = [s for s in webui.get("/sdapi/v1/script-info") if s["name"] == "demofusion_ext"]
    assert sorted(s["is_img2img"] for s in served) == [False, True]
    for script in served:
        enabled, *args = script["args"]
        assert (enabled["label"], enabled["value"]) == ("DemoFusion", False)
        assert [a["label"] for a in args] == [s.label for s in SETTINGS]
        for arg, s in zip(args, SETTINGS):
            assert arg["value"] == s.default and type(arg["value"]) is s.limit.kind, (s.name, arg)
            if s.limit.kind in (int, float):
                assert (arg["minimum"], arg["maximum"], arg["step"]) == (s.limit.low, s.limit.high, s.step), s.name
            elif isinstance(s.choices, tuple):
                assert [c[0] if isinstance(c, list) else c for c in arg["choices"]] == list(s.choices), s.name
            elif s.choices == "upscalers":
                assert arg["choices"] == phase_upscalers(webui)
