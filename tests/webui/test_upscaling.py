"""Upscaling that keeps the picture (issue 17), in a real WebUI: a large img2img picture enters at the largest phase
it covers, and any WebUI upscaler may enlarge a finished phase for the next."""
from collections import Counter

import numpy as np
import pytest

from demofusion_ext.script.plan_line import plan_counts
from hosts import SCRIPT_LOGIC
from webui_client import (cfg_rows, demofusion, df, has, images, img2img_request, infotext, infotexts, picture,
                          phase_upscalers, pixel_upscaler, probe, small, started_here, xyz_axis_choices, xyz_plot)


def run_img2img(webui, req):
    """An img2img request with the unet probe: the answer and what the UNet received."""
    started_here(webui)
    status, r = webui.img2img(probe(req, "dfunet"))
    assert status == 200, r
    return r, webui.get("/dfunet/calls")


def img2img(webui, size, picture_side, strength=0.5, steps=4, **settings):
    return run_img2img(webui, img2img_request(df(**settings), picture((picture_side, picture_side)), strength,
                                              steps=steps, **size))


def rows_per_job(calls):
    """UNet rows per job (phase that ran), as the UNet itself received them."""
    rows = Counter()
    for call in calls["calls"]:
        rows[call["job"]] += call["shape"][0]
    return [rows[j] for j in sorted(rows)]


@pytest.mark.parametrize("aspect", [1.0, 0.75], ids=["square", "4:3"])
def test_a_large_picture_enters_at_its_own_size_and_no_unet_call_exceeds_the_window(webui, aspect):
    size, _ = small(webui)
    w = size["width"]                                      # 128 (Forge 64): the window and phase 1
    h = int(w * aspect)
    if h % webui.spec.size_step:
        pytest.skip(f"{webui.spec.title} rounds Height {h} to a multiple of {webui.spec.size_step} (hosts.py)")
    r, calls = run_img2img(webui, img2img_request(df(scale=3), picture((2 * w, 2 * h)), width=w, height=h, steps=4))
    [img] = images(r)
    assert img.size == (3 * w, 3 * h)
    assert has(infotext(r), "DemoFusion picture entry", f"phase 2 of 3 at {2 * w}x{2 * h}")
    # phases 2 and 3 ran (two jobs), each with exactly the views the plan counts for them (x2: cond and uncond)
    plan = plan_counts(w, h, 4, 3, 0.5, denoising=0.5, picture=(2 * w, 2 * h))
    assert rows_per_job(calls) == [cfg_rows(webui, c) for c in plan if not c["skipped"]]
    shapes = {tuple(c["shape"][-2:]) for c in calls["calls"]}
    assert shapes == {(h // 8, w // 8)}, shapes                     # every UNet call is one window, none larger
    assert calls["picture"][-2:] == [h // 4, w // 4]                  # encoded at phase 2's size, not shrunk


@SCRIPT_LOGIC
def test_a_picture_the_size_of_the_window_runs_every_phase_as_before(webui):
    size, _ = small(webui)
    side = size["width"]
    r, calls = img2img(webui, size, side, scale=3)
    assert images(r)[0].size == (3 * side, 3 * side) and "DemoFusion picture entry" not in infotext(r)
    plan = plan_counts(side, side, 4, 3, 0.5, denoising=0.5)
    assert rows_per_job(calls) == [cfg_rows(webui, c) for c in plan]  # phase 1 is the WebUI's own img2img
    assert "distance" not in calls                                     # no picture was encoded at a phase size


@SCRIPT_LOGIC
def test_lower_strength_keeps_the_large_picture(webui):
    # in latent space: the random VAE does not reconstruct pictures, so pixel distances would measure the VAE. The
    # random UNet's predictions are large, so even low strengths move the latent: the order is what is checked.
    size, _ = small(webui)
    side = size["width"]
    distances = [img2img(webui, size, 2 * side, strength=s, scale=2)[1]["distance"] for s in (0.02, 0.1, 0.8)]
    print("latent distance from the picture at strength 0.02 / 0.1 / 0.8:", [round(d, 4) for d in distances])
    assert distances == sorted(distances) and distances[0] < 0.8 * distances[-1]


UPSCALERS = ["Latent", "Lanczos", "Nearest", "tiny-esrgan-4x"]


def served_upscalers(webui) -> list[str]:
    """The UPSCALERS DemoFusion offers on this host (Forge Neo has no Nearest, and Lanczos only as DemoFusion's own)."""
    offered = phase_upscalers(webui)
    return [n for n in UPSCALERS if n in offered]


def test_each_phase_upscaler_is_used_between_phases(webui):
    size, want = small(webui)
    results = {}
    upscalers = served_upscalers(webui)
    pixel = pixel_upscaler(webui)
    for name in upscalers:
        # at phase denoising 0.5, as upscaling users run it, phase 2 keeps more of the enlarged start
        status, r = webui.txt2img(demofusion(df(upscaler=name, phase_images=name == pixel, phase_denoise=0.5),
                                             **size))
        assert status == 200, r
        out = images(r)
        assert out[0].size == want and has(infotext(r), "DemoFusion upscaler", name)
        results[name] = np.asarray(out[0].convert("RGB"), dtype=float)
        if name == pixel:              # the phase image is the decode the upscaler enlarged
            assert [i.size for i in out] == [want, (want[0] // 2, want[1] // 2)]
    differences = {(a, b): float(np.abs(results[a] - results[b]).mean())
                   for i, a in enumerate(upscalers) for b in upscalers[i + 1:]}
    print("mean |difference| between upscalers:", {f"{a}/{b}": round(d, 2) for (a, b), d in differences.items()})
    # an ESRGAN model that fails to load falls back to Lanczos silently: the model's phase must differ from it
    # (the results are deterministic, so any difference is the upscaler's)
    assert all(d > 0.5 for d in differences.values()), differences


@SCRIPT_LOGIC
def test_a_large_picture_with_a_model_upscaler(webui):
    size, _ = small(webui)
    side = size["width"]
    r, calls = img2img(webui, size, 2 * side, scale=3, upscaler="tiny-esrgan-4x")
    assert images(r)[0].size == (3 * side, 3 * side) and len(rows_per_job(calls)) == 2
    assert has(infotext(r), "DemoFusion upscaler", "tiny-esrgan-4x")


def test_an_unknown_upscaler_is_refused_with_the_available_ones(webui):
    status, r = webui.txt2img(demofusion(df(upscaler="4x-UltraSharp")))
    assert status == 500, r
    listed = ", ".join(phase_upscalers(webui))
    assert "Phase upscaler '4x-UltraSharp'" in r["errors"] and f"choose one of: {listed}." in r["errors"], r["errors"]
    assert webui.plain_image() == webui.baseline


@SCRIPT_LOGIC
def test_an_xyz_plot_over_phase_upscalers(webui):
    size, want = small(webui)
    # an axis with choices takes its values from the dropdown list
    plot = xyz_plot(xyz_axis_choices(webui), ("[DemoFusion] Phase upscaler", ["Latent", "Lanczos"]))
    status, r = webui.txt2img(dict(demofusion([False], **size), **plot))
    assert status == 200, r
    infos = infotexts(r)[1:]                               # the grid's own comes first
    assert sum(has(i, "DemoFusion upscaler", "Lanczos") for i in infos) == 1
    assert sum(has(i, "DemoFusion upscaler", "Latent") for i in infos) == 1
    assert [i.size for i in images(r)][1:] == [want, want]
