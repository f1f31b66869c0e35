"""What a user is told must be true (issue 16): interrupted results, absurd sizes, dicts of settings, phases that
made no model evaluation."""
import json

import pytest

from webui_client import demofusion, has, images, phase_log_lines, plain_request, small, txt2img_interrupted_in_phase_2

ON = {"enabled": True}


def infotext(r, i=0):
    return json.loads(r["info"])["infotexts"][i]


@pytest.mark.parametrize("phase", [2, 3])
def test_an_interrupted_result_says_which_phase_it_is_and_is_not_repeated(webui, phase):
    side = 64 if webui.host == "forge" else 128
    (status, r), _ = txt2img_interrupted_in_phase_2(
        webui, demofusion([dict(ON, scale=3, phase_images=True)], steps=30 if phase == 2 else 12, width=side,
                          height=side), phase=phase)
    assert status == 200, r
    done = phase - 1
    # the last finished phase, once: phase 1 is the final image itself; interrupted in phase 3, phase 1 follows
    assert [i.size for i in images(r)] == [(done * side, done * side)] + [(side, side)] * (done - 1)
    info = infotext(r)
    assert has(info, "DemoFusion stopped", f"interrupted in phase {phase} of 3; the image is phase {done}"), info
    assert f"DemoFusion output size: {done * side}x{done * side}" in info
    assert webui.txt2img(plain_request())[1]["images"][0] == webui.baseline


@pytest.mark.parametrize("natives,scale,message", [
    (4, 8, "above the WebUI's Maximum image size (200 MP"),      # 2048 px x 8 on SD1, 4096 px x 8 on SDXL
    (3, 1.5, "far above this model's native size"),              # 1536 px on SD1, 3072 px on SDXL
])
def test_absurd_sizes_are_refused_before_any_work(webui, natives, scale, message):
    size = natives * (1024 if webui.sdxl else 512)
    status, r = webui.txt2img(demofusion([dict(ON, scale=scale)], width=size, height=size, steps=1))
    assert status == 500 and message in r.get("errors", ""), r
    assert webui.txt2img(plain_request())[1]["images"][0] == webui.baseline


def test_a_dict_of_settings_without_enabled_turns_demofusion_on(webui):
    size, want = small(webui)
    status, r = webui.txt2img(demofusion([{"scale": 2}], **size))
    assert status == 200 and images(r)[0].size == want, r
    assert "DemoFusion scale: 2.0" in infotext(r)


def test_a_phase_that_made_no_model_evaluation_is_noted(webui):
    """DDIM at phase denoising 0.5 with 2 steps: the WebUI's img2img path runs no step of the phase."""
    size, _ = small(webui)
    before = len(phase_log_lines(webui))
    status, r = webui.txt2img(demofusion([dict(ON, scale=2, phase_denoise=0.5)], sampler_name="DDIM", steps=2,
                                         **size))
    assert status == 200, r
    [line] = phase_log_lines(webui)[before:]
    calls = int(line.split()[8])
    noted = "DemoFusion note: phase 2 made no model evaluation" in infotext(r).replace('"', "")
    assert noted == (calls == 0), (line, infotext(r))
    if webui.host == "a1111":
        assert noted, line                                   # measured on A1111: 0 UNet calls


def test_xyz_axes_are_offered_by_an_api_only_server(webui):
    """The fixture's servers start API-only (--nowebui): the axes must be there too, and drive a plot."""
    [xyz] = [s for s in webui.get("/sdapi/v1/script-info") if s["name"] == "x/y/z plot" and not s["is_img2img"]]
    choices = xyz["args"][0]["choices"]
    for label in ("[DemoFusion] Scale", "[DemoFusion] Window stride", "[DemoFusion] Sigma",
                  "[DemoFusion] Phase upscaler"):
        assert choices.count(label) == 1, choices
    size, _ = small(webui)
    args = [choices.index("[DemoFusion] Scale"), "2, 2.5", [], 0, "", [], 0, "", [], True, True, False, False,
            False, False, False, 0, False]
    status, r = webui.txt2img(dict(demofusion([False], **size), script_name="x/y/z plot", script_args=args))
    assert status == 200, r
    side = size["width"]
    assert {(2 * side, 2 * side), (int(2.5 * side / 8 + 0.5) * 8,) * 2} <= {i.size for i in images(r)}
