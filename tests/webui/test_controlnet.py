"""DemoFusion with sd-webui-controlnet units in a real WebUI: per-view hints, both folder orders, clean-up."""
import json
import os
import subprocess

import numpy as np
import pytest

from control_images import coordinate_image, phase_picture, stripes, view_place
from webui_client import (BIN, HARNESS, REPO, WebUI, controlnet_request, harness_missing, images,
                          txt2img_interrupted_in_phase_2)

CN = HARNESS / "webui" / "extensions" / "sd-webui-controlnet"
EXT = HARNESS / "webui" / "extensions"
MODEL = {"sd1": ("tiny-sd15.safetensors", "control_tiny_sd15"), "sdxl": ("tiny-sdxl.safetensors", "control_tiny_sdxl")}
PORT = 7873


def unit(kind, image, **kw):
    return dict({"enabled": True, "module": "none", "model": MODEL[kind][1], "image": image, "weight": 1.0,
                 "save_detected_map": False}, **kw)


def request(df_args, units, probe=False, **kw):
    return controlnet_request(df_args, units, "dfprobe" if probe else None, **kw)


def _links_to_repo():
    return [p for p in EXT.iterdir() if p.is_symlink() and p.resolve() == REPO]


def start(kind, folder, extra_args=(), port=PORT):
    for link in _links_to_repo():
        link.unlink()
    if (EXT / folder).is_symlink():            # a link of this name to another checkout
        (EXT / folder).unlink()
    (EXT / folder).symlink_to(REPO)
    for name, folder in (("zz-dfprobe", "cn_probe"), ("zz-dfunet", "unet_probe")):
        if not (EXT / name).exists():
            (EXT / name).symlink_to(REPO / "tests" / "webui" / folder)
    env = dict(os.environ, PORT=str(port), CKPT=str(HARNESS / "webui" / "models" / "Stable-diffusion" / MODEL[kind][0]))
    env.pop("EXTENSION", None)
    subprocess.run([str(BIN / "stop_webui.sh"), str(port)], env=env, capture_output=True)
    out = subprocess.run([str(BIN / "start_webui.sh"), *extra_args], env=env, capture_output=True, text=True)
    if out.returncode:
        pytest.fail(f"WebUI with ControlNet did not start: {out.stdout[-1500:]} {out.stderr[-1500:]}")
    ui = WebUI(f"http://127.0.0.1:{port}", kind)
    ui.folder = folder
    return ui, env


def stop(env, folder):
    subprocess.run([str(BIN / "stop_webui.sh"), env["PORT"]], env=env, capture_output=True)
    for name in (folder, "zz-dfprobe"):
        if (EXT / name).is_symlink():
            (EXT / name).unlink()


@pytest.fixture(scope="module", params=[("sd1", "main"), ("sd1", "zz-demofusion"), ("sdxl", "main")],
                ids=["sd1-before-controlnet", "sd1-after-controlnet", "sdxl-before-controlnet"])
def cn_webui(request):
    """A WebUI with ControlNet, this extension under a folder name sorting before or after it, and the probe."""
    missing = harness_missing()
    if missing:
        pytest.skip(missing)
    if not CN.exists():
        pytest.skip("needs ControlNet in the WebUI harness (shared/webui-harness/bin/install_controlnet.sh)")
    kind, folder = request.param
    ui, env = start(kind, folder)
    ui.cn_baseline = ui.txt2img(request_cn_plain(kind))[1]["images"][0]
    yield ui
    stop(env, folder)


def request_cn_plain(kind):
    return request(None, [unit(kind, stripes(128, 96))], width=128, height=96)


@pytest.mark.parametrize("scale", [2, 2.5])
@pytest.mark.parametrize("n_units", [1, 2])
def test_every_phase_call_gets_the_hints_of_its_views(cn_webui, scale, n_units):
    w, h = 128, 96
    units = [unit(cn_webui.kind, coordinate_image(w, h)) for _ in range(n_units)]
    status, r = cn_webui.txt2img(request([{"enabled": True, "scale": scale}], units, probe=True, width=w, height=h))
    assert status == 200, r
    assert images(r)[0].size == (int(w * scale + 0.5) // 8 * 8, int(h * scale + 0.5) // 8 * 8)
    calls = cn_webui.get("/dfprobe/calls")
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


def test_the_control_image_changes_the_final_image(cn_webui):
    a = cn_webui.txt2img(request([{"enabled": True, "scale": 2}], [unit(cn_webui.kind, stripes(128, 128))]))
    b = cn_webui.txt2img(request([{"enabled": True, "scale": 2}], [unit(cn_webui.kind, coordinate_image(128, 128))]))
    assert a[0] == b[0] == 200
    x, y = (np.asarray(images(r[1])[0], dtype=float) for r in (a, b))
    assert x.shape == y.shape == (256, 256, 3) and np.abs(x - y).mean() > 2


def test_gallery_order_final_then_phases_then_detected_maps(cn_webui):
    status, r = cn_webui.txt2img(request([{"enabled": True, "scale": 3, "phase_images": True}],
                                         [unit(cn_webui.kind, stripes(128, 128), save_detected_map=True)]))
    assert status == 200
    sizes = [i.size for i in images(r)]
    assert sizes[:3] == [(384, 384), (128, 128), (256, 256)] and len(sizes) == 4
    assert "DemoFusion output size: 384x384" in json.loads(r["info"])["infotexts"][0]


def test_plain_controlnet_generation_is_byte_identical_after_demofusion_runs(cn_webui):
    ok = cn_webui.txt2img(request([{"enabled": True, "scale": 2}], [unit(cn_webui.kind, stripes(128, 96))],
                                  width=128, height=96))
    refused = cn_webui.txt2img(request([{"enabled": True}], [unit(cn_webui.kind, stripes(128, 96))],
                                       sampler_name="UniPC"))
    assert ok[0] == 200 and refused[0] == 500
    assert cn_webui.txt2img(request_cn_plain(cn_webui.kind))[1]["images"][0] == cn_webui.cn_baseline
    # interrupted inside phase 2
    (status, _), _ = txt2img_interrupted_in_phase_2(cn_webui, request(
        [{"enabled": True, "scale": 3}], [unit(cn_webui.kind, stripes(192, 192))], steps=30, width=192, height=192))
    assert status == 200
    assert cn_webui.txt2img(request_cn_plain(cn_webui.kind))[1]["images"][0] == cn_webui.cn_baseline


def test_no_unit_is_byte_identical_to_a_webui_without_controlnet(cn_webui, tmp_path_factory):
    if (cn_webui.kind, cn_webui.folder) != ("sd1", "main"):
        pytest.skip("compared once, on SD1")
    req = request([{"enabled": True, "scale": 2.5}], None)
    with_cn = cn_webui.txt2img(req)
    settings = tmp_path_factory.mktemp("nocn") / "config.json"
    settings.write_text(json.dumps({"disabled_extensions": ["sd-webui-controlnet", "controlnet-tiny-shim"]}))
    ui, env = start(cn_webui.kind, "main", ["--ui-settings-file", str(settings)], port=PORT + 1)
    try:
        without = ui.txt2img(req)
        assert "controlnet" not in [s["name"] for s in ui.get("/sdapi/v1/script-info")]
    finally:
        stop(env, "main")
    assert with_cn[0] == without[0] == 200 and with_cn[1]["images"] == without[1]["images"]


def test_a_large_img2img_picture_gets_the_hints_of_the_phases_it_runs(cn_webui):
    """The picture covers phase 2, so the run starts there: every call (jobs 0 and 1: phases 2 and 3) gets the crop
    of the phase-size hint at its view's place."""
    if cn_webui.folder != "main":
        pytest.skip("the folder order is checked by the txt2img test")
    w, h = 128, 96
    from webui_client import picture
    req = request([{"enabled": True, "scale": 3}], [unit(cn_webui.kind, coordinate_image(w, h))], probe=True,
                  width=w, height=h, init_images=[picture((2 * w, 2 * h))], denoising_strength=0.5)
    status, r = cn_webui.call("POST", "/sdapi/v1/img2img", req)
    assert status == 200, r
    assert images(r)[0].size == (3 * w, 3 * h) and "DemoFusion picture entry: phase 2 of 3" in r["info"]
    calls = cn_webui.get("/dfprobe/calls")
    assert {c["job"] for c in calls} == {0, 1}
    pictures = {job: phase_picture(coordinate_image(w, h), (job + 2) * h, (job + 2) * w) for job in (0, 1)}
    for call in calls:
        rows, _, lh, lw = call["x"]
        assert (lh, lw) == (h // 8, w // 8)
        [hint] = call["hints"]
        for row in range(rows):
            assert view_place(pictures[call["job"]], hint, row, lh, lw, dilation=call["job"] + 2), (call["job"], row)


def test_per_view_prompts_with_a_unit(cn_webui):
    """ControlNet marks its cond and uncond contexts with a leading token: the view texts go after it, and the
    unit's hints still follow the views."""
    if cn_webui.folder != "main":
        pytest.skip("the folder order is checked by the hint tests")
    from test_view_prompts import PROMPT, TEXTS, assert_windows_got_their_words
    req = request([{"enabled": True, "scale": 2, "random_jitter": False, "patch_prompts": True}],
                  [unit(cn_webui.kind, coordinate_image(128, 128))], width=128, height=128, prompt=PROMPT,
                  negative_prompt="blurry")
    req["alwayson_scripts"]["dfunet"] = {"args": [True, {"left": "cat", "right": "dog", "texts": TEXTS}]}
    status, r = cn_webui.txt2img(req)
    assert status == 200, r
    assert_windows_got_their_words(cn_webui.get("/dfunet/calls")["calls"], cn_webui.sdxl)
