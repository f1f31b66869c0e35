"""DemoFusion with Forge's built-in ControlNet (ControlNet Integrated), SD1 and SDXL: every view's control call sees
its own part of every unit's hint, the units' weight, guidance range and control mode hold, nothing is left behind.

The Forge harness builds tiny ControlNets for its tiny models (../shared/forge-harness/README.md, "ControlNet");
the unet probe (zz-dfunet) records every ControlNet model call with four pixels of each hint row.
"""
import numpy as np
import pytest

from control_images import coordinate_image, phase_picture, stripes, view_place
from hosts import ALL, FORGE_FAMILY
from servers import extra_server
from webui_client import (INJECT, VIEW_PROMPT, assert_windows_got_their_words, controlnet_request, controlnet_unit,
                          df, images, infotext, picture, pixels, plain_controlnet_request, probe, started_here,
                          stop_in_phase)

pytestmark = pytest.mark.webui(hosts=FORGE_FAMILY, models=ALL, baselines=["controlnet"])


@pytest.mark.parametrize("n_units,scale", [(1, 2), (2, 2.5)])
def test_every_control_call_gets_its_views_part_of_every_unit(webui, n_units, scale):
    started_here(webui)
    w = h = 64
    units = [controlnet_unit(webui, coordinate_image(w, h), weight=1.0 - 0.25 * i) for i in range(n_units)]
    status, r = webui.txt2img(probe(controlnet_request(df(scale=scale), units, width=w, height=h), "dfunet"))
    assert status == 200, r
    size = int(w * scale + 0.5) // 8 * 8
    assert images(r)[0].size == (size, size)
    calls = webui.get("/dfunet/calls")
    unet_calls = [c for c in calls["calls"] if c["job"] >= 1]
    control = [c for c in calls["control"] if c["job"] >= 1]
    assert unet_calls and all(c["control"] for c in unet_calls)        # every view batch got its control
    # one control call per unit per UNet call, each on the views the UNet call ran: no full-size control
    assert len(control) == n_units * len(unet_calls)
    assert sorted(c["x"] for c in control) == sorted(c["shape"] for c in unet_calls for _ in range(n_units))
    assert all(c["x"][-2:] == [h // 8, w // 8] for c in control)
    assert any(c["job"] == 0 and c["x"][-2:] == [h // 8, w // 8] for c in calls["control"])   # phase 1: Forge's own
    sides = {1: 2 * w, 2: size}
    pictures = {job: phase_picture(coordinate_image(w, h), sides[job], sides[job]) for job in sides}
    for call in control:
        rows, _, lh, lw = call["x"]
        hint = call["hint"]
        assert hint["shape"] == [rows, 3, 8 * lh, 8 * lw]
        # each row is the crop of the phase-size hint at its view's place: a window, or a dilated view (2 in
        # phase 2, 3 in phase 3 at 2.5x); the call's views (a cond and an uncond row each) are all different
        places = [view_place(pictures[call["job"]], hint, row, lh, lw, dilation=1 + call["job"]) for row in range(rows)]
        # a phase's first evaluation has cond rows only where the host makes it so (hosts.py): one row per view
        n = 1 if webui.spec.first_step_without_uncond and places[0::2] != places[1::2] else 2
        assert all(places) and (n == 1 or places[0::2] == places[1::2]), (call["job"], places)
        assert len(set(places)) == rows // n, (call["job"], places)


@pytest.mark.webui(models=["sd1"])       # the unit's handling, the same for every model of a host
def test_weight_guidance_range_and_control_mode_are_honoured(webui):
    """Each setting changes the image as Forge applies it without DemoFusion; the two non-Balanced modes weight
    by row marks, which a view batch (here 13 views in one call) must repeat per view. Four steps: at two, the
    range's half-way mark falls on the last step, whose control changes nothing measurable (measured)."""
    started_here(webui)
    base = dict(width=64, height=64, steps=4)
    image = coordinate_image(64, 64)
    results = {}
    for name, kw in [("balanced", {}), ("weight 0.5", {"weight": 0.5}), ("end 0.5", {"guidance_end": 0.5}),
                     ("prompt", {"control_mode": "My prompt is more important"}),
                     ("control", {"control_mode": "ControlNet is more important"})]:
        req = controlnet_request(df(scale=2), [controlnet_unit(webui, image, **kw)], **base)
        status, r = webui.txt2img(probe(req, "dfunet") if name == "end 0.5" else req)
        assert status == 200, (name, r)
        results[name] = pixels(r)
        if name == "end 0.5":
            later = [c for c in webui.get("/dfunet/calls")["calls"] if c["job"] == 1]
            assert 0 < sum(c["control"] for c in later) < len(later)        # the control stops half-way
    status, r = webui.txt2img(controlnet_request(df(scale=2), None, **base))
    results["no unit"] = pixels(r)
    status, r = webui.txt2img(controlnet_request(df(scale=2), [controlnet_unit(webui, stripes(64, 64))], **base))
    results["stripes"] = pixels(r)
    names = list(results)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert np.abs(results[a] - results[b]).mean() > 0.5, (a, b)


@pytest.mark.webui(models=["sd1"])       # the unit's handling, the same for every model of a host
def test_a_masked_unit_is_served_per_view(webui):
    mask = coordinate_image(64, 64)
    status, r = webui.txt2img(controlnet_request(df(scale=2), [controlnet_unit(webui, coordinate_image(64, 64),
                                                                               mask_image=mask)], width=64, height=64))
    assert status == 200, r
    status, r2 = webui.txt2img(controlnet_request(df(scale=2), [controlnet_unit(webui, coordinate_image(64, 64))],
                                                  width=64, height=64))
    assert np.abs(pixels(r) - pixels(r2)).mean() > 0.5


def test_a_large_img2img_picture_gets_the_hints_of_the_phase_it_enters(webui):
    started_here(webui)
    w = h = 64
    req = controlnet_request(df(scale=2), [controlnet_unit(webui, coordinate_image(w, h))], width=w, height=h,
                             init_images=[picture((2 * w, 2 * h))], denoising_strength=0.5)
    status, r = webui.img2img(probe(req, "dfunet"))
    assert status == 200, r
    assert images(r)[0].size == (2 * w, 2 * h) and "DemoFusion picture entry: phase 2 of 2" in r["info"]
    control = webui.get("/dfunet/calls")["control"]
    assert control and {c["job"] for c in control} == {0}
    whole = phase_picture(coordinate_image(w, h), 2 * h, 2 * w)
    for call in control:
        rows, _, lh, lw = call["x"]
        assert (lh, lw) == (h // 8, w // 8)
        for row in range(rows):
            assert view_place(whole, call["hint"], row, lh, lw, dilation=2), row


def test_plain_controlnet_is_byte_identical_after_runs_and_to_forge_without_the_extension(webui):
    started_here(webui)
    before = webui.baseline_of("controlnet")
    ok = webui.txt2img(controlnet_request(df(scale=2), [controlnet_unit(webui, stripes(64, 64))], width=64, height=64))
    assert ok[0] == 200
    status, r = webui.txt2img(stop_in_phase(controlnet_request(df(scale=3), [controlnet_unit(webui, stripes(64, 64))],
                                                               width=64, height=64, steps=4), 2))
    assert status == 200 and "interrupted in phase 2 of 3" in infotext(r), r
    after = webui.txt2img(plain_controlnet_request(webui))
    assert after[1]["images"][0] == before
    if webui.sdxl:
        return                                     # compared once, on SD1
    # no link to this checkout at all; the probes' links off too
    with extra_server(webui.host, folder=None, disabled=list(webui.spec.probes)) as bare:
        assert "demofusion_ext" not in [s["name"] for s in bare.get("/sdapi/v1/script-info")]
        without = bare.txt2img(plain_controlnet_request(bare))
    assert without[0] == 200 and without[1]["images"][0] == before


def test_per_view_prompts_with_a_unit(webui):
    started_here(webui)
    req = controlnet_request(df(scale=2, random_jitter=False, patch_prompts=True),
                             [controlnet_unit(webui, coordinate_image(64, 64))], width=64, height=64,
                             prompt=VIEW_PROMPT, negative_prompt="blurry")
    status, r = webui.txt2img(probe(req, "dfunet", True, INJECT))
    assert status == 200, r
    calls = webui.get("/dfunet/calls")
    assert_windows_got_their_words(webui, calls["calls"])
    assert all(c["control"] for c in calls["calls"] if c["job"] == 1)


@pytest.mark.webui(models=["sd1"])       # the unit's handling, the same for every model of a host
def test_another_extensions_get_control_hook_is_left_in_place(webui):
    """DemoFusion stubs the head unit's get_control in phases >= 2 and puts back exactly what was there: here the
    probe's own instance hook, set as another extension would."""
    started_here(webui)
    req = controlnet_request(df(scale=2), [controlnet_unit(webui, coordinate_image(64, 64))], width=64, height=64)
    status, r = webui.txt2img(probe(req, "dfunet"))
    assert status == 200, r
    hooks = webui.get("/dfunet/calls")["get_control"]
    assert [h["job"] for h in hooks] == [0, 1] and all(h["intact"] for h in hooks), hooks
