"""DemoFusion with Forge's built-in ControlNet (ControlNet Integrated), SD1 and SDXL: every view's control call sees
its own part of every unit's hint, the units' weight, guidance range and control mode hold, nothing is left behind.

The Forge harness builds tiny ControlNets for its tiny models (../shared/forge-harness/README.md, "ControlNet");
the unet probe (zz-dfunet) records every ControlNet model call with four pixels of each hint row.
"""
import json
import os
import subprocess

import numpy as np
import pytest

from control_images import coordinate_image, phase_picture, stripes, view_place
from webui_client import FORGE, REPO, WebUI, controlnet_request, images, txt2img_interrupted_in_phase_2

ON = {"enabled": True}


@pytest.fixture()
def forge(webui):
    if webui.host != "forge":
        pytest.skip("Forge only")
    names = webui.get("/controlnet/model_list")["model_list"]
    tag = "forge-sdxl" if webui.sdxl else "forge-sd15"
    matching = [n for n in names if tag in n]
    if not matching:
        pytest.skip(f"no tiny ControlNet for {webui.kind} in the Forge harness (its setup.sh builds them)")
    webui.cn_model = matching[0]
    return webui


def unit(ui, image, **kw):
    # module "None" with a capital N and the model's full name with its hash: else Forge skips the unit silently
    return dict({"enabled": True, "module": "None", "model": ui.cn_model, "image": image, "weight": 1.0}, **kw)


def request(df_args, units, probe=False, **kw):
    return controlnet_request(df_args, units, "dfunet" if probe else None, **kw)


def final(response):
    return np.asarray(images(response)[0], dtype=float)


def plain_cn(ui):
    return request(None, [unit(ui, stripes(64, 64))], width=64, height=64)


@pytest.mark.parametrize("n_units,scale", [(1, 2), (2, 2.5)])
def test_every_control_call_gets_its_views_part_of_every_unit(forge, n_units, scale):
    w = h = 64
    units = [unit(forge, coordinate_image(w, h), weight=1.0 - 0.25 * i) for i in range(n_units)]
    status, r = forge.txt2img(request([dict(ON, scale=scale)], units, probe=True, width=w, height=h))
    assert status == 200, r
    size = int(w * scale + 0.5) // 8 * 8
    assert images(r)[0].size == (size, size)
    probe = forge.get("/dfunet/calls")
    unet_calls = [c for c in probe["calls"] if c["job"] >= 1]
    control = [c for c in probe["control"] if c["job"] >= 1]
    assert unet_calls and all(c["control"] for c in unet_calls)        # every view batch got its control
    # one control call per unit per UNet call, each on the views the UNet call ran: no full-size control
    assert len(control) == n_units * len(unet_calls)
    assert sorted(c["x"] for c in control) == sorted(c["shape"] for c in unet_calls for _ in range(n_units))
    assert all(c["x"][-2:] == [h // 8, w // 8] for c in control)
    assert any(c["job"] == 0 and c["x"][-2:] == [h // 8, w // 8] for c in probe["control"])   # phase 1: Forge's own
    sides = {1: 2 * w, 2: size}
    pictures = {job: phase_picture(coordinate_image(w, h), sides[job], sides[job]) for job in sides}
    for call in control:
        rows, _, lh, lw = call["x"]
        hint = call["hint"]
        assert hint["shape"] == [rows, 3, 8 * lh, 8 * lw]
        # each row is the crop of the phase-size hint at its view's place: a window, or a dilated view (2 in
        # phase 2, 3 in phase 3 at 2.5x); the call's views (a cond and an uncond row each) are all different
        places = [view_place(pictures[call["job"]], hint, row, lh, lw, dilation=1 + call["job"]) for row in range(rows)]
        assert all(places) and places[0::2] == places[1::2], (call["job"], places)
        assert len(set(places)) == rows // 2, (call["job"], places)


def test_weight_guidance_range_and_control_mode_are_honoured(forge):
    """Each setting changes the image as Forge applies it without DemoFusion; the two non-Balanced modes weight
    by row marks, which a view batch (here 13 views in one call) must repeat per view."""
    base = dict(width=64, height=64)
    df = [dict(ON, scale=2)]
    image = coordinate_image(64, 64)
    results = {}
    for name, kw in [("balanced", {}), ("weight 0.5", {"weight": 0.5}), ("end 0.5", {"guidance_end": 0.5}),
                     ("prompt", {"control_mode": "My prompt is more important"}),
                     ("control", {"control_mode": "ControlNet is more important"})]:
        status, r = forge.txt2img(request(df, [unit(forge, image, **kw)], probe=name == "end 0.5", **base))
        assert status == 200, (name, r)
        results[name] = final(r)
        if name == "end 0.5":
            probe = forge.get("/dfunet/calls")
            later = [c for c in probe["calls"] if c["job"] == 1]
            assert 0 < sum(c["control"] for c in later) < len(later)        # the control stops half-way
    status, r = forge.txt2img(request(df, None, **base))
    results["no unit"] = final(r)
    status, r = forge.txt2img(request(df, [unit(forge, stripes(64, 64))], **base))
    results["stripes"] = final(r)
    names = list(results)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert np.abs(results[a] - results[b]).mean() > 0.5, (a, b)


def test_a_masked_unit_is_served_per_view(forge):
    mask = coordinate_image(64, 64)
    status, r = forge.txt2img(request([dict(ON, scale=2)], [unit(forge, coordinate_image(64, 64), mask_image=mask)],
                                      width=64, height=64))
    assert status == 200, r
    status, r2 = forge.txt2img(request([dict(ON, scale=2)], [unit(forge, coordinate_image(64, 64))],
                                       width=64, height=64))
    assert np.abs(final(r) - final(r2)).mean() > 0.5


def test_a_large_img2img_picture_gets_the_hints_of_the_phase_it_enters(forge):
    from webui_client import picture
    w = h = 64
    req = request([dict(ON, scale=2)], [unit(forge, coordinate_image(w, h))], probe=True, width=w, height=h,
                  init_images=[picture((2 * w, 2 * h))], denoising_strength=0.5)
    status, r = forge.call("POST", "/sdapi/v1/img2img", req)
    assert status == 200, r
    assert images(r)[0].size == (2 * w, 2 * h) and "DemoFusion picture entry: phase 2 of 2" in r["info"]
    control = forge.get("/dfunet/calls")["control"]
    assert control and {c["job"] for c in control} == {0}
    whole = phase_picture(coordinate_image(w, h), 2 * h, 2 * w)
    for call in control:
        rows, _, lh, lw = call["x"]
        assert (lh, lw) == (h // 8, w // 8)
        for row in range(rows):
            assert view_place(whole, call["hint"], row, lh, lw, dilation=2), row


def test_plain_controlnet_is_byte_identical_after_runs_and_to_forge_without_the_extension(forge, tmp_path):
    before = forge.txt2img(plain_cn(forge))
    assert before[0] == 200
    ok = forge.txt2img(request([dict(ON, scale=2)], [unit(forge, stripes(64, 64))], width=64, height=64))
    assert ok[0] == 200
    (status, _), _ = txt2img_interrupted_in_phase_2(forge, request(
        [dict(ON, scale=3)], [unit(forge, stripes(64, 64))], steps=30, width=64, height=64))
    assert status == 200
    after = forge.txt2img(plain_cn(forge))
    assert after[1]["images"][0] == before[1]["images"][0]
    if forge.sdxl or forge.log is None:
        return                                     # compared once, on SD1, with a server started here
    settings = tmp_path / "config.json"
    linked = [p.name for p in (FORGE.tree / "extensions").iterdir()
              if p.is_symlink() and (p.resolve() == REPO or REPO in p.resolve().parents)]
    settings.write_text(json.dumps({"disabled_extensions": linked}))
    port = 7886
    env = dict(os.environ, PORT=str(port), CKPT=str(FORGE.tree / "models" / "Stable-diffusion" / "tiny-forge-sd15.safetensors"))
    env.pop("EXTENSION", None)
    subprocess.run([str(FORGE.stop), str(port)], env=env, capture_output=True)
    out = subprocess.run([str(FORGE.start), "--ui-settings-file", str(settings)], env=env, capture_output=True, text=True)
    try:
        assert out.returncode == 0, out.stdout[-2000:]
        bare = WebUI(f"http://127.0.0.1:{port}", "forge")
        assert "demofusion_ext" not in [s["name"] for s in bare.get("/sdapi/v1/script-info")]
        bare.cn_model = forge.cn_model
        without = bare.txt2img(plain_cn(bare))
    finally:
        subprocess.run([str(FORGE.stop), str(port)], env=env, capture_output=True)
    assert without[0] == 200 and without[1]["images"][0] == before[1]["images"][0]


def test_per_view_prompts_with_a_unit(forge):
    from test_view_prompts import PROMPT, TEXTS, assert_windows_got_their_words
    req = request([dict(ON, scale=2, random_jitter=False, patch_prompts=True)], [unit(forge, coordinate_image(64, 64))],
                  width=64, height=64, prompt=PROMPT, negative_prompt="blurry")
    req["alwayson_scripts"]["dfunet"] = {"args": [True, {"left": "cat", "right": "dog", "texts": TEXTS}]}
    status, r = forge.txt2img(req)
    assert status == 200, r
    calls = forge.get("/dfunet/calls")
    assert_windows_got_their_words(calls["calls"], forge.sdxl)
    assert all(c["control"] for c in calls["calls"] if c["job"] == 1)


def test_another_extensions_get_control_hook_is_left_in_place(forge):
    """DemoFusion stubs the head unit's get_control in phases >= 2 and puts back exactly what was there: here the
    probe's own instance hook, set as another extension would."""
    status, r = forge.txt2img(request([dict(ON, scale=2)], [unit(forge, coordinate_image(64, 64))], probe=True,
                                      width=64, height=64))
    assert status == 200, r
    hooks = forge.get("/dfunet/calls")["get_control"]
    assert [h["job"] for h in hooks] == [0, 1] and all(h["intact"] for h in hooks), hooks
