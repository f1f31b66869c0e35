"""DemoFusion with sd-webui-controlnet units in a real WebUI: per-view hints, both folder orders, clean-up.

The A1111 harness installs ControlNet and its tiny models (../shared/webui-harness/README.md, "ControlNet"). Its
"ui" server loads this checkout before ControlNet, its "api" server after it: the tests that depend on the order
run on both (SD1 there).
"""
import numpy as np
import pytest

from control_images import coordinate_image, phase_picture, stripes, view_place
from hosts import ALL
from webui_client import (INJECT, VIEW_PROMPT, assert_windows_got_their_words, controlnet_request, controlnet_unit,
                          df, images, infotext, picture, plain_controlnet_request, probe, started_here, stop_in_phase)
from servers import extra_server

BOTH_ORDERS = pytest.mark.webui(servers=["ui", "api"])
pytestmark = pytest.mark.webui(hosts=["a1111"], models=ALL, baselines=["controlnet"])


@BOTH_ORDERS
@pytest.mark.parametrize("scale", [2, 2.5])
@pytest.mark.parametrize("n_units", [1, 2])
def test_every_phase_call_gets_the_hints_of_its_views(webui, scale, n_units):
    started_here(webui)
    w, h = 128, 96
    units = [controlnet_unit(webui, coordinate_image(w, h)) for _ in range(n_units)]
    status, r = webui.txt2img(probe(controlnet_request(df(scale=scale), units, width=w, height=h), "dfprobe"))
    assert status == 200, r
    assert images(r)[0].size == (int(w * scale + 0.5) // 8 * 8, int(h * scale + 0.5) // 8 * 8)
    calls = webui.get("/dfprobe/calls")
    later = [c for c in calls if c["job"] >= 1]
    assert later and len(calls) > len(later)
    phase_w = {1: 2 * w, 2: int(scale * w / 8 + 0.5) * 8}
    phase_h = {1: 2 * h, 2: int(scale * h / 8 + 0.5) * 8}
    pictures = {job: phase_picture(coordinate_image(w, h), phase_h[job], phase_w[job]) for job in phase_w}
    for call in later:
        rows, _, lh, lw = call["x"]
        assert len(call["hints"]) == n_units
        for hint in call["hints"]:
            assert hint["shape"] == [rows, 3, 8 * lh, 8 * lw]          # exactly 8x the latent, a row per x row
            # every row is the crop of the phase-size hint at its view's place, padding included, and the call's
            # views all differ; phase 2 dilates by 2; scale 2.5 adds phase 3 at 2.5x, which dilates by 3
            places = [view_place(pictures[call["job"]], hint, row, lh, lw, dilation=1 + call["job"])
                      for row in range(rows)]
            assert all(places) and len(set(places)) == rows // 2, (call["job"], call["x"], places)
            # rows are view-major; one image gives each view a cond and an uncond row, with the same hint
            assert hint["at00"][0::2] == hint["at00"][1::2] and hint["last"][0::2] == hint["last"][1::2]


@BOTH_ORDERS
def test_the_control_image_changes_the_final_image(webui):
    a = webui.txt2img(controlnet_request(df(scale=2), [controlnet_unit(webui, stripes(128, 128))]))
    b = webui.txt2img(controlnet_request(df(scale=2), [controlnet_unit(webui, coordinate_image(128, 128))]))
    assert a[0] == b[0] == 200
    x, y = (np.asarray(images(r[1])[0], dtype=float) for r in (a, b))
    assert x.shape == y.shape == (256, 256, 3) and np.abs(x - y).mean() > 2


@BOTH_ORDERS
def test_gallery_order_final_then_phases_then_detected_maps(webui):
    status, r = webui.txt2img(controlnet_request(df(scale=3, phase_images=True),
                                                 [controlnet_unit(webui, stripes(128, 128), save_detected_map=True)]))
    assert status == 200
    sizes = [i.size for i in images(r)]
    assert sizes[:3] == [(384, 384), (128, 128), (256, 256)] and len(sizes) == 4
    assert "DemoFusion output size: 384x384" in infotext(r)


@BOTH_ORDERS
def test_plain_controlnet_generation_is_byte_identical_after_demofusion_runs(webui):
    started_here(webui)
    ok = webui.txt2img(controlnet_request(df(scale=2), [controlnet_unit(webui, stripes(128, 96))],
                                          width=128, height=96))
    refused = webui.txt2img(controlnet_request(df(), [controlnet_unit(webui, stripes(128, 96))],
                                               sampler_name="UniPC"))
    assert ok[0] == 200 and refused[0] == 500
    assert webui.txt2img(plain_controlnet_request(webui))[1]["images"][0] == webui.baseline_of("controlnet")
    # interrupted inside phase 2
    req = controlnet_request(df(scale=3), [controlnet_unit(webui, stripes(128, 128))])
    status, r = webui.txt2img(stop_in_phase(req, 2))
    assert status == 200 and "interrupted in phase 2 of 3" in infotext(r), r
    assert webui.txt2img(plain_controlnet_request(webui))[1]["images"][0] == webui.baseline_of("controlnet")


@pytest.mark.webui(models=["sd1"])
def test_no_unit_is_byte_identical_to_a_webui_without_controlnet(webui):
    req = controlnet_request(df(scale=2.5), None)
    with_cn = webui.txt2img(req)
    with extra_server("a1111", disabled=["sd-webui-controlnet", "controlnet-tiny-shim"]) as bare:
        without = bare.txt2img(req)
        assert "controlnet" not in [s["name"] for s in bare.get("/sdapi/v1/script-info")]
    assert with_cn[0] == without[0] == 200 and with_cn[1]["images"] == without[1]["images"]


def test_a_large_img2img_picture_gets_the_hints_of_the_phases_it_runs(webui):
    """The picture covers phase 2, so the run starts there: every call (jobs 0 and 1: phases 2 and 3) gets the crop
    of the phase-size hint at its view's place."""
    started_here(webui)
    w, h = 128, 96
    req = controlnet_request(df(scale=3), [controlnet_unit(webui, coordinate_image(w, h))], width=w, height=h,
                             init_images=[picture((2 * w, 2 * h))], denoising_strength=0.5)
    status, r = webui.img2img(probe(req, "dfprobe"))
    assert status == 200, r
    assert images(r)[0].size == (3 * w, 3 * h) and "DemoFusion picture entry: phase 2 of 3" in r["info"]
    calls = webui.get("/dfprobe/calls")
    assert {c["job"] for c in calls} == {0, 1}
    pictures = {job: phase_picture(coordinate_image(w, h), (job + 2) * h, (job + 2) * w) for job in (0, 1)}
    for call in calls:
        rows, _, lh, lw = call["x"]
        assert (lh, lw) == (h // 8, w // 8)
        [hint] = call["hints"]
        for row in range(rows):
            assert view_place(pictures[call["job"]], hint, row, lh, lw, dilation=call["job"] + 2), (call["job"], row)


def test_per_view_prompts_with_a_unit(webui):
    """ControlNet marks its cond and uncond contexts with a leading token: the view texts go after it, and the
    unit's hints still follow the views."""
    started_here(webui)
    req = controlnet_request(df(scale=2, random_jitter=False, patch_prompts=True),
                             [controlnet_unit(webui, coordinate_image(128, 128))], width=128, height=128,
                             prompt=VIEW_PROMPT, negative_prompt="blurry")
    status, r = webui.txt2img(probe(req, "dfunet", True, INJECT))
    assert status == 200, r
    assert_windows_got_their_words(webui, webui.get("/dfunet/calls")["calls"])
