"""What a user is told must be true (issue 16): interrupted results, absurd sizes, dicts of settings, phases that
made no model evaluation, X/Y/Z axes on an API-only server."""
import pytest

from hosts import ALL, REFERENCE, SCRIPT_LOGIC
from webui_client import (demofusion, df, has, images, infotext, phase_log_lines, plain_request, small, stop_in_phase,
                          started_here, xyz_axis_choices, xyz_plot)


@pytest.mark.parametrize("phase", [2, 3])
def test_an_interrupted_result_is_the_last_finished_phase_once_and_leaves_nothing_behind(webui, phase):
    """Interrupt pressed in `phase` after two of its four evaluations (the fault probe, at a known evaluation)."""
    started_here(webui)
    size, _ = small(webui)
    side = size["width"]
    before = len(phase_log_lines(webui, phase))
    status, r = webui.txt2img(stop_in_phase(demofusion(df(scale=3, phase_images=True), steps=4, **size), phase))
    assert status == 200, r
    done = phase - 1
    # the last finished phase, once: phase 1 is the final image itself; interrupted in phase 3, phase 1 follows
    got = images(r)
    assert [i.size for i in got] == [(done * side, done * side)] + [(side, side)] * (done - 1)
    info = infotext(r)
    assert has(info, "DemoFusion stopped", f"interrupted in phase {phase} of 3; the image is phase {done}"), info
    assert f"DemoFusion output size: {done * side}x{done * side}" in info
    if phase == 2:        # the final image is phase 1, decoded by the WebUI: exactly the plain image of these settings
        assert got[0].tobytes() == images(webui.txt2img(plain_request(steps=4, **size))[1])[0].tobytes()
    # the sampler stopped at the next evaluation: the interrupted phase made the two it had begun
    [line] = phase_log_lines(webui, phase)[before:]
    assert line.split()[5] == "2", line
    assert webui.plain_image() == webui.baseline


@pytest.mark.webui(hosts=REFERENCE, models=ALL)        # the native size is the model's
@pytest.mark.parametrize("natives,scale,message", [
    (4, 8, "above the WebUI's Maximum image size (200 MP"),      # 2048 px x 8 on SD1, 4096 px x 8 on SDXL
    (3, 1.5, "far above this model's native size"),              # 1536 px on SD1, 3072 px on SDXL
])
def test_absurd_sizes_are_refused_before_any_work(webui, natives, scale, message):
    size = natives * (1024 if webui.sdxl else 512)
    status, r = webui.txt2img(demofusion(df(scale=scale), width=size, height=size, steps=1))
    assert status == 500 and message in r.get("errors", ""), r
    assert webui.plain_image() == webui.baseline


@SCRIPT_LOGIC
def test_a_dict_of_settings_without_enabled_turns_demofusion_on(webui):
    size, want = small(webui)
    status, r = webui.txt2img(demofusion([{"scale": 2}], **size))
    assert status == 200 and images(r)[0].size == want, r
    assert "DemoFusion scale: 2.0" in infotext(r)


@pytest.mark.webui(models=ALL)        # DDIM, a timestep sampler: its phases read the model's own schedule
def test_a_phase_that_made_no_model_evaluation_is_noted(webui):
    """DDIM at phase denoising 0.5 with 2 steps: the WebUI's img2img path runs no step of the phase."""
    size, _ = small(webui)
    before = len(phase_log_lines(webui))
    status, r = webui.txt2img(demofusion(df(scale=2, phase_denoise=0.5), sampler_name="DDIM", steps=2, **size))
    assert status == 200, r
    [line] = phase_log_lines(webui)[before:]
    calls = int(line.split()[8])
    noted = "DemoFusion note: phase 2 made no model evaluation" in infotext(r).replace('"', "")
    assert noted == (calls == 0), (line, infotext(r))
    if webui.host == "a1111":
        assert noted, line                                   # measured on A1111: 0 UNet calls


@pytest.mark.webui(hosts=REFERENCE, servers=["api"])
def test_xyz_axes_are_offered_by_an_api_only_server(webui):
    """An API-only server (--nowebui) builds the scripts' arguments before any UI callback: the axes must be there
    too, once each, and drive a plot."""
    choices = xyz_axis_choices(webui)
    for label in ("[DemoFusion] Scale", "[DemoFusion] Window stride", "[DemoFusion] Sigma",
                  "[DemoFusion] Phase upscaler"):
        assert choices.count(label) == 1, choices
    size, _ = small(webui)
    status, r = webui.txt2img(dict(demofusion([False], **size), **xyz_plot(choices, ("[DemoFusion] Scale", "2, 2.5"))))
    assert status == 200, r
    side = size["width"]
    assert {(2 * side, 2 * side), (int(2.5 * side / 8 + 0.5) * 8,) * 2} <= {i.size for i in images(r)}
