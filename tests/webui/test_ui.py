"""What a person sees in the WebUI's own UI: the accordion, its computed size and cost, the gallery, XYZ axes
(on each host's "ui" server, which serves the API tests too)."""
import json
import os
import pathlib
import shutil
import subprocess

import pytest

from demofusion_ext.script.plan_line import plan_counts, plan_summary
from hosts import HOSTS
from webui_client import (cfg_rows, demofusion, images, infotext, phase_log_lines, picture, pixel_upscaler, small,
                          xyz_axis_choices, xyz_plot)

HERE = pathlib.Path(__file__).resolve().parent
SHOTS = pathlib.Path(os.environ.get("DEMOFUSION_SCREENSHOTS", HERE / "screenshots"))
SETTINGS = {"enabled": True, "scale": 2.5, "stride": 0.25, "view_batch_size": 7, "cosine_scale_1": 2.5,
            "cosine_scale_2": 1.5, "cosine_scale_3": 0.5, "sigma": 1.3, "random_jitter": False,
            "phase_denoise": 0.9, "decode_tile_size": 512, "phase_images": False, "upscaler": "Lanczos",
            "view_prompts": True, "prompt_keep_threshold": 0.4, "window_interaction": True, "speed": "Fast",
            "region_noise": 0.5, "global_cutoff": 0.1}     # not Fast's preset: a paste must not apply the preset


def settings(webui) -> dict:
    """SETTINGS with a pixel upscaler the host lists."""
    return dict(SETTINGS, upscaler=pixel_upscaler(webui))


def browser(webui, script, *args, **env):
    """Run a browser script (playwright-core, the A1111 harness's) against the server's UI: its last line's JSON and
    the screenshot folder."""
    playwright = HOSTS["a1111"].root / "node" / "node_modules" / "playwright-core"
    if not shutil.which("node") or not shutil.which("chromium") or not playwright.exists():
        pytest.skip("needs node, /usr/bin/chromium and the harness's playwright-core (setup.sh without SKIP_BROWSER)")
    shots = SHOTS / webui.host
    shots.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(["node", str(HERE / script), webui.url + "/", *map(str, args), str(shots)],
                         env=dict(os.environ, PLAYWRIGHT_CORE=str(playwright), **env),
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1]), shots


def test_browser_plan_line_follows_every_input_and_matches_the_run(webui):
    # each change, and the line the engine's own plan gives for the settings after it; the page starts at 128 px,
    # 4 steps (browser_generate.js) and generates at the host's cheap size
    side, n = small(webui)[0]["width"], webui.spec.steps
    state = {"txt2img_width": 128, "txt2img_height": 128, "txt2img_steps": 4,
             "demofusion_ext_txt2img_scale": 2, "demofusion_ext_txt2img_stride": 0.5}
    changes = []
    for elem_id, value in [("demofusion_ext_txt2img_scale", 3), ("demofusion_ext_txt2img_stride", 0.25),
                           ("txt2img_width", 192), ("txt2img_height", 96), ("txt2img_steps", 3),
                           ("demofusion_ext_txt2img_scale", 2), ("demofusion_ext_txt2img_stride", 0.5),
                           ("txt2img_width", side), ("txt2img_height", side), ("txt2img_steps", n)]:
        state[elem_id] = value
        changes.append([elem_id, value, plan_summary(state["txt2img_width"], state["txt2img_height"],
                                                     state["txt2img_steps"], state["demofusion_ext_txt2img_scale"],
                                                     state["demofusion_ext_txt2img_stride"])])
    before = len(phase_log_lines(webui)) if webui.log else 0
    result, shots = browser(webui, "browser_generate.js", CHANGES=json.dumps(changes))
    print("screenshots:", shots / "accordion.png", shots / "generated.png")
    print("plan line followed in ms:", [(f["id"], f["value"], f["ms"]) for f in result["follows"]])
    assert all(f["ok"] for f in result["follows"]), [f for f in result["follows"] if not f["ok"]]
    assert result["note"] == changes[-1][2] == (f"Output {2 * side} x {2 * side} px in 2 phases. Base-size model "
                                                f"evaluations (x2 with CFG): phase 1: {n}, phase 2: {n} x (9 + 4) - 4 "
                                                f"= {13 * n - 4}; total {14 * n - 4}.")
    assert result["gallery"] == [[2 * side, 2 * side], [side, side]]       # the final image first, then phase 1
    assert "DemoFusion scale: 2.0" in result["info"]
    if webui.log:            # the run made what the line said: 13n - 4 base-size views, cond and uncond rows
        [line] = phase_log_lines(webui)[before:]
        phase2 = plan_counts(side, side, n, 2, 0.5)[1]
        assert line.split()[5] == str(n) and line.split()[11].rstrip(",") == str(cfg_rows(webui, phase2)) == \
            str(2 * (13 * n - 4) - (13 if webui.spec.first_step_without_uncond else 0)), line


def test_xyz_plot_offers_scale_stride_and_sigma_axes(webui):
    choices = xyz_axis_choices(webui)
    for label in ("[DemoFusion] Scale", "[DemoFusion] Window stride", "[DemoFusion] Sigma",
                  "[DemoFusion] Phase upscaler", "[DemoFusion] Per-view prompts", "[DemoFusion] Prompt keep threshold",
                  "[DemoFusion] Window interaction", "[DemoFusion] Speed", "[DemoFusion] Region-wise noise",
                  "[DemoFusion] Global view cut-off"):
        assert label in choices
    size, _ = small(webui)
    side = size["width"]
    status, r = webui.txt2img(dict(demofusion([False], **size), **xyz_plot(choices, ("[DemoFusion] Scale", "2, 2.5"))))
    assert status == 200, r
    sizes = [i.size for i in images(r)]
    assert (2 * side, 2 * side) in sizes and (2.5 * side, 2.5 * side) in sizes


def test_pasted_infotext_restores_every_demofusion_setting(webui):
    if not webui.spec.infotext_api:
        # Forge 2's and Neo's API cannot apply an infotext at all: a plain one fails too (api.py get_field_value
        # calls isinstance with a parameterized generic type); pasting in their UI is a different path
        plain = webui.txt2img(dict(demofusion([False]), steps=1, width=64, height=64))[1]
        status, r = webui.txt2img({"infotext": infotext(plain), "save_images": False})
        assert status == 500 and "isinstance" in str(r), r
        pytest.skip(f"{webui.spec.title}'s API fails every infotext request (host bug, checked above)")
    status, r = webui.txt2img(demofusion([settings(webui)], steps=1, **small(webui)[0]))
    assert status == 200
    info = infotext(r)
    again = webui.txt2img({"infotext": info, "save_images": False})
    assert again[0] == 200 and again[1]["images"] == r["images"]
    assert infotext(again[1]) == info


def test_browser_paste_restores_every_demofusion_control_and_a_plain_image_turns_it_off(webui, tmp_path):
    from PIL import Image, PngImagePlugin
    want = settings(webui)
    pngs = []
    for name, args in (("demofusion", [want]), ("plain", [False])):
        # the server writes the infotext; a PNG with it as its "parameters" text is what PNG Info reads
        status, r = webui.txt2img(demofusion(args, width=64, height=64, steps=1))
        assert status == 200, r
        meta = PngImagePlugin.PngInfo()
        meta.add_text("parameters", infotext(r))
        pngs.append(tmp_path / f"{name}.png")
        Image.new("RGB", (64, 64), (90, 120, 200)).save(pngs[-1], pnginfo=meta)
    result, shots = browser(webui, "browser_paste.js", *pngs, WANT=json.dumps(want))
    print("paste in the browser:", json.dumps(result))
    print("screenshots:", shots / "paste-demofusion.png", shots / "paste-plain.png")
    # every control showed something else before, so a paste that changes nothing fails
    assert all(result["before"][k] != v for k, v in want.items()), result["before"]
    assert result["pasted_ok"], json.dumps({k: [result["pasted"][k], v] for k, v in want.items()
                                            if result["pasted"][k] != v})          # [shown, pasted]
    assert result["pasted"] == dict(want, enabled_input=True)
    assert result["plain_ok"] and not result["plain"]["enabled"] and not result["plain"]["enabled_input"], result


def test_browser_img2img_plan_line_shows_where_a_large_picture_enters(webui, tmp_path):
    """The picture opened in img2img: a gr.Image on A1111 and Classic, the Forge canvas on Forge 2 and Neo."""
    import base64
    png = tmp_path / "picture.png"
    png.write_bytes(base64.b64decode(picture((256, 256))))
    want = plan_summary(128, 128, 4, 3, 0.5, 0.75, picture=(256, 256))
    assert "phase 1: skipped" in want
    result, _ = browser(webui, "browser_img2img_plan.js", png, WANT=want)
    print("img2img plan line after opening the picture:", result)
    assert result["ok"] and result["line"] == want, result
