"""DemoFusion in a real WebUI over HTTP: sizes, samplers, arguments, conflicts, progress, clean-up."""
import base64
import io
import json

import pytest
from PIL import Image

from hosts import ALL, SCRIPT_LOGIC
from webui_client import (demofusion, df, fail_in_phase, has, images, infotext, infotexts, mean_abs_difference,
                          phase_log_lines, plain_request, probe, small, started_here, stop_in_phase,
                          txt2img_polling)


@pytest.mark.parametrize("scale,size,want", [(2, (128, 128), (256, 256)), (2.5, (128, 128), (320, 320)),
                                             (2, (128, 96), (256, 192)), (3, (96, 64), (288, 192))])
@SCRIPT_LOGIC
def test_final_image_is_scale_times_base(webui, scale, size, want):
    if webui.spec.base:          # a slow host: every side halved (its base is 64), the rounding cases kept
        size, want = [tuple(v * webui.spec.base // 128 for v in pair) for pair in (size, want)]
    status, r = webui.txt2img(demofusion(df(scale=scale), width=size[0], height=size[1]))
    assert status == 200, r
    [img] = images(r)
    assert img.size == want
    info = r["info"]
    for key in ["DemoFusion: True", f"DemoFusion scale: {float(scale)}", "DemoFusion stride: 0.5",
                "DemoFusion view batch size: 16", "DemoFusion cosine scale 1: 3.0", "DemoFusion cosine scale 2: 1.0",
                "DemoFusion cosine scale 3: 1.0", "DemoFusion sigma: 0.8", "DemoFusion jitter: True",
                "DemoFusion phase denoise: 1.0", "DemoFusion decode tile: 1024", "DemoFusion phase images: False",
                f"DemoFusion output size: {want[0]}x{want[1]}"]:
        assert key in info


def test_phase_images_follow_the_final_image(webui):
    size, (side2, _) = small(webui)
    side = size["width"]
    status, r = webui.txt2img(demofusion(df(scale=3, phase_images=True), **size))
    assert status == 200, r
    assert [i.size for i in images(r)] == [(3 * side, 3 * side), (side, side), (side2, side2)]


# One sampler per source of noise the hosts give samplers (the request's seeded RNG, which ancestral, Restart, LCM and
# DDPM samplers draw from; the seeded Brownian tree of the SDE samplers): the others draw none, so the same request
# can differ only through DemoFusion's own seeded jitter, which these repeats cover too.
REPEATED = ("Euler a", "DPM++ 2M SDE")


SWEEP_SCALE = 1.5           # the sweeps' phase 2: local and dilated views as at 2x, in 8 views instead of 13


def sweep_sizes(webui):
    """The sweeps' base size and the size of their final image."""
    size, _ = small(webui)
    return size, (int(SWEEP_SCALE * size["width"]), int(SWEEP_SCALE * size["height"]))


def test_every_listed_sampler_works_or_is_refused_by_name(webui):
    outcome = {}
    size, want = sweep_sizes(webui)
    for s in webui.get("/sdapi/v1/samplers"):
        request = demofusion(df(scale=SWEEP_SCALE, phase_images=True), sampler_name=s["name"], steps=2, **size)
        status, r = webui.txt2img(request)
        if status == 200:
            final, first = images(r)
            assert final.size == want and first.size == (size["width"], size["height"])
            # phase 2 repainted the picture (not the enlarged phase 1)
            assert mean_abs_difference(final, first.resize(want, Image.BICUBIC)) > 4, s["name"]
            if s["name"] in REPEATED:            # and the same request gives the same image
                assert webui.txt2img(request)[1]["images"][0] == r["images"][0], s["name"]
            outcome[s["name"]] = "works"
        else:
            msg = r.get("errors", "")
            assert f"'{s['name']}'" in msg and "Choose one of: " in msg and "Euler" in msg, msg
            outcome[s["name"]] = "refused"
    print("sampler outcomes:", outcome)
    assert sorted(n for n, o in outcome.items() if o == "refused") == sorted(webui.spec.refused_samplers)
    assert all(outcome.get(name) == "works" for name in REPEATED), outcome


def test_every_schedule_type_works(webui):
    if not webui.spec.schedule_types:
        assert webui.call("GET", "/sdapi/v1/schedulers")[0] == 404
        pytest.skip(f"{webui.spec.title} has no Schedule type (no /sdapi/v1/schedulers, checked): its schedules are "
                    f"part of the sampler names, which the sampler sweep covers")
    size, want = sweep_sizes(webui)
    for sch in webui.get("/sdapi/v1/schedulers"):
        for sampler in ("Euler", "Heun")[:1 if webui.forge else 2]:
            status, r = webui.txt2img(demofusion(df(scale=SWEEP_SCALE), sampler_name=sampler, scheduler=sch["name"],
                                                 steps=2, **size))
            assert status == 200 and images(r)[0].size == want, (sch["name"], sampler, r.get("errors"))


@SCRIPT_LOGIC
def test_named_and_positional_arguments_give_the_same_image(webui):
    named = {"enabled": True, "scale": 2.0, "stride": 0.5, "view_batch_size": 4, "sigma": 1.0}
    positional = [True, 2.0, 0.5, 4, 3.0, 1.0, 1.0, 1.0, True, 1.0, 1024, False]
    size, _ = small(webui)
    a, b = webui.txt2img(demofusion([named], **size)), webui.txt2img(demofusion(positional, **size))
    assert a[0] == b[0] == 200 and a[1]["images"] == b[1]["images"]


def test_a_bad_argument_fails_the_request_naming_it(webui):
    """The other wrong arguments' messages are the engine's (tests/test_api_args.py): this proves the HTTP answer
    carries them."""
    status, r = webui.txt2img(demofusion(df(scale=20)))
    assert status == 500 and "'scale' = 20.0 is out of range: allowed 1 .. 8" in r.get("errors", ""), r


@SCRIPT_LOGIC
def test_hires_fix_is_refused(webui):
    status, r = webui.txt2img(demofusion(df(), enable_hr=True, hr_scale=2, hr_upscaler="Latent"))
    assert status == 500 and "Hires. fix" in r["errors"]


@SCRIPT_LOGIC
def test_batches_give_one_image_per_seed(webui):
    size, want = small(webui)
    status, r = webui.txt2img(demofusion(df(scale=2), batch_size=2, n_iter=2, **size))
    assert status == 200, r
    imgs = images(r)
    assert [i.size for i in imgs] == [want] * 4
    assert len({i.tobytes() for i in imgs}) == 4
    assert json.loads(r["info"])["all_seeds"] == [1234, 1235, 1236, 1237]


@SCRIPT_LOGIC
def test_progress_covers_all_phases(webui):
    seen = []
    size, _ = small(webui, 192)
    status, r = txt2img_polling(webui, demofusion(df(scale=3), steps=4 if webui.forge else 8, **size),
                                lambda p: seen.append(p["state"]))
    assert status == 200
    assert any(s["job_count"] == 3 for s in seen), seen[:5]
    assert max(s["job_no"] for s in seen) >= 1


def test_skip_returns_the_last_finished_phase_and_the_batch_goes_on(webui):
    started_here(webui)
    size, _ = small(webui)
    side = size["width"]
    # four evaluations a phase: the skip lands after two of them, mid-phase
    status, r = webui.txt2img(stop_in_phase(demofusion(df(scale=2), n_iter=2, steps=4, **size), 2, "skip",
                                            iteration=0))
    assert status == 200, r
    got = images(r)
    assert [i.size for i in got] == [(side, side), (2 * side, 2 * side)]
    # the skipped image is its finished phase 1 (the plain image of its seed); the second one is whole
    plain = webui.txt2img(plain_request(steps=4, **size))[1]
    assert got[0].tobytes() == images(plain)[0].tobytes()
    # and each image's infotext says what it is
    first, second = infotexts(r)
    assert has(first, "DemoFusion stopped", "skipped in phase 2 of 2; the image is phase 1"), first
    assert "DemoFusion stopped" not in second and f"DemoFusion output size: {2 * side}x{2 * side}" in second


@pytest.mark.webui(models=["sdxl"])     # SDXL's condition carries a vector in every row, SD1's is its subset
def test_prompt_editing_and_and_prompts_work(webui):
    size, want = small(webui)
    for prompt in ["a [cat:dog:0.5] in a garden", "a cat AND a dog :0.7", "[a cat|a dog] AND a house"]:
        status, r = webui.txt2img(demofusion(df(scale=2), prompt=prompt, batch_size=2, steps=2, **size))
        assert status == 200, (prompt, r)
        assert [i.size for i in images(r)][-2:] == [want, want]


@pytest.mark.webui(models=ALL)        # SDXL: DemoFusion rewrites the vector condition, which the WebUI caches
def test_plain_generation_is_byte_identical_after_success_and_errors(webui):
    options = webui.get("/sdapi/v1/options")
    assert webui.txt2img(demofusion(df(scale=2.5), **small(webui)[0]))[0] == 200
    assert webui.get("/sdapi/v1/options") == options
    assert webui.plain_image() == webui.baseline
    assert webui.txt2img(demofusion(df(), sampler_name="UniPC"))[0] == 500
    assert webui.plain_image() == webui.baseline
    assert webui.txt2img(demofusion([{"enabled": True, "scale": 99}]))[0] == 500
    assert webui.plain_image() == webui.baseline
    # disabled: exactly the plain image
    assert webui.txt2img(demofusion([{"enabled": False, "scale": 3}]))[1]["images"][0] == webui.baseline


@pytest.mark.webui(models=ALL)
def test_phases_run_fused_views_through_the_unet(webui):
    """The harness log shows each phase's fused evaluations: 9 windows + 4 dilated views, cond and uncond rows."""
    before = len(phase_log_lines(webui))
    status, r = webui.txt2img(demofusion(df(scale=2, view_batch_size=4), **small(webui)[0]))
    assert status == 200
    lines = phase_log_lines(webui)
    assert len(lines) == before + 1
    words = lines[-1].split()
    evals, calls, rows = int(words[5]), int(words[8]), int(words[11].rstrip(","))
    n = webui.spec.steps                 # the request names none: its host's (hosts.py)
    assert evals == n
    # (9 + 4) views x 2 rows per evaluation in ceil(13 / 4) calls; at t = 0 (c2 = 0) only the 9 windows; 13 rows
    # fewer where the host makes the first step without the negative prompt (hosts.py)
    rows += 13 if webui.spec.first_step_without_uncond else 0
    assert (calls, rows) in [(n * 4, n * 26), ((n - 1) * 4 + 3, (n - 1) * 26 + 18)], lines[-1]
    assert ("SDXL crop coordinates per view" in lines[-1]) == (webui.sdxl)


@pytest.mark.webui(models=["sdxl"])
def test_sdxl_views_get_their_own_crop_coordinates(webui):
    """What each SDXL UNet call received, read back from its vector condition `y` (the probe): every local window's
    rows carry the window's place in the phase in px, the dilated views and phase 1 keep the prompt's (0, 0)."""
    started_here(webui)
    from demofusion_ext.views import window_starts, window_stride
    w, h = (64, 64) if webui.forge else (128, 96)
    steps = 3
    status, r = webui.txt2img(probe(demofusion(df(scale=2, random_jitter=False), steps=steps, width=w, height=h),
                                    "dfunet"))
    assert status == 200, r
    calls = webui.get("/dfunet/calls")["calls"]
    assert all("crops" in c for c in calls), calls[:1]
    assert {tuple(xy) for c in calls if c["job"] == 0 for xy in c["crops"]} == {(0, 0)}
    window = (h // 8, w // 8)
    sh, sw = window_stride(window, 0.5)
    places = {(8 * t, 8 * l) for t in window_starts(2 * window[0], window[0], sh)
              for l in window_starts(2 * window[1], window[1], sw)}
    seen = [tuple(xy) for c in calls if c["job"] == 1 for xy in c["crops"]]
    assert set(seen) == places | {(0, 0)}
    # a window's cond and uncond rows, once per evaluation (Euler: one per step; no uncond row in the first step
    # where the host makes it without the negative prompt, hosts.py)
    rows = 2 * steps - (1 if webui.spec.first_step_without_uncond else 0)
    assert all(seen.count(xy) == rows for xy in places - {(0, 0)}), sorted(set(seen))


@SCRIPT_LOGIC
def test_each_finished_phase_shows_in_the_live_preview(webui):
    """Between phases the preview shows the phase just finished (here with the WebUI's preview decoder)."""
    seen = set()

    def preview(progress):
        if progress["current_image"]:
            seen.add(Image.open(io.BytesIO(base64.b64decode(progress["current_image"]))).size)
    status, _ = txt2img_polling(webui, demofusion(df(scale=3), steps=6, **small(webui)[0]), preview,
                                path="/sdapi/v1/progress", interval=0.02)
    assert status == 200
    print("preview sizes seen:", sorted(seen))
    # the preview decoder's scale is the WebUI's choice; phases 2 and 3 are 2x and 3x the base, so their
    # previews are in the ratio 3 : 2
    assert any(3 * a[0] == 2 * b[0] for a in seen for b in seen), seen


@SCRIPT_LOGIC
def test_saved_phase_images_sit_beside_the_final_image_with_a_suffix(webui):
    started_here(webui, "the output folder is known only for a harness server started here")
    outputs = webui.outputs
    before = set(outputs.rglob("*.png")) if outputs.exists() else set()
    status, r = webui.txt2img(demofusion(df(scale=3, phase_images=True), save_images=True, **small(webui)[0]))
    assert status == 200
    new = sorted(p.name for p in set(outputs.rglob("*.png")) - before)
    assert len(new) == 3 and sum("-demofusion-phase1" in n for n in new) == 1 and \
        sum("-demofusion-phase2" in n for n in new) == 1, new


def test_a_failed_late_phase_returns_the_last_finished_phase_and_leaves_nothing_behind(webui):
    started_here(webui)
    request = fail_in_phase(demofusion(df(scale=3), **small(webui)[0]), 3)       # phase 3 fails as it starts
    status, r = webui.txt2img(request)
    assert status == 200, r
    side = request["width"]
    assert [i.size for i in images(r)] == [(2 * side, 2 * side)]     # phase 2, the last finished one
    info = infotext(r)
    assert "DemoFusion error: \"phase 3 failed: dffault: injected failure at" in info and "the image is phase 2" in info
    assert webui.plain_image() == webui.baseline
