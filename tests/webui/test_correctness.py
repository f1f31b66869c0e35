"""Issue-13 correctness in the real hosts: one set of views per sampler evaluation (long prompts, Batch cond/uncond
off, Heun), another extension's apply_model hook left in place, out-of-memory view batches split, and a failed
image's error not carried to the next image of a batch count."""
import pytest

from hosts import ALL, SCRIPT_LOGIC
from webui_client import (demofusion, df, fail_in_phase, images, infotext, infotexts, phase_log_lines, probe, small,
                          started_here)

LONG_PROMPT = ", ".join(["a very detailed photograph of a small grey cat sitting on a wooden chair in a sunny garden"]
                        * 6)       # about 110 CLIP tokens: two 75-token chunks against the negative prompt's one
# the apply_model probe is an A1111 extension (Forge has no apply_model to hook): its tests run there, on both models
# where the model's own apply_model (ldm's for SD1, sgm's for SDXL) and conditioning matter
A1111 = pytest.mark.webui(hosts=["a1111"], models=ALL)


def probed(webui, args, oom_above=0, **kw):
    started_here(webui)
    status, r = webui.txt2img(probe(demofusion(args, **kw), "dfapply", True, oom_above))
    return status, r, webui.get("/dfapply/calls")


def evaluations(calls, job=1):
    """Phase calls grouped by timestep: one group per evaluation for a one-evaluation-per-step sampler."""
    groups = {}
    for c in calls:
        if c["job"] == job:
            groups.setdefault(c["t"], []).append(c)
    return list(groups.values())


def assert_cond_and_uncond_saw_the_same_views(groups):
    assert groups
    for calls in groups:
        assert len(calls) == 2, [(c["context"], c["rows"]) for c in calls]      # cond and uncond, apart
        cond, uncond = calls
        assert cond["x"] == uncond["x"] and cond["sums"] == uncond["sums"]     # the same views, in the same order


@A1111
def test_a_long_prompt_gives_cond_and_uncond_the_same_views(webui):
    status, r, calls = probed(webui, df(scale=2), prompt=LONG_PROMPT, negative_prompt="blurry")
    assert status == 200, r
    groups = evaluations(calls["calls"])
    assert {c["context"] for g in groups for c in g} == {154, 77}       # the WebUI called them separately
    assert_cond_and_uncond_saw_the_same_views(groups)
    assert len({tuple(g[0]["sums"]) for g in groups}) == len(groups)    # every evaluation drew its own views


@A1111
def test_batch_cond_uncond_off_gives_cond_and_uncond_the_same_views(webui):
    # set and put back through the options API: A1111 1.10 does not restore a request's override_settings of an
    # option that config.json does not hold yet, which would leave the server with the setting off
    before = webui.get("/sdapi/v1/options")["batch_cond_uncond"]
    webui.call("POST", "/sdapi/v1/options", {"batch_cond_uncond": False})
    try:
        status, r, calls = probed(webui, df(scale=2))
    finally:
        webui.call("POST", "/sdapi/v1/options", {"batch_cond_uncond": before})
    assert status == 200, r
    assert {c["rows"] for c in calls["calls"] if c["job"] == 0} == {1}        # the setting was in force
    assert_cond_and_uncond_saw_the_same_views(evaluations(calls["calls"]))


@SCRIPT_LOGIC
def test_heun_draws_new_views_for_each_of_its_evaluations(webui):
    """Heun's second evaluation and the next step's first share a sigma; they are still two evaluations."""
    size, _ = small(webui)
    before = len(phase_log_lines(webui))
    status, r = webui.txt2img(demofusion(df(scale=2), sampler_name="Heun", steps=3, **size))
    assert status == 200, r
    lines = phase_log_lines(webui)
    assert len(lines) == before + 1
    assert lines[-1].split()[5] == "5", lines[-1]        # 3 steps: 3 + 2 evaluations (none after sigma 0)


@A1111
def test_another_extensions_apply_model_hook_is_left_in_place(webui):
    status, r, calls = probed(webui, df(scale=2), **small(webui)[0])
    assert status == 200, r
    assert calls["intact"] is True and any(c["job"] == 1 for c in calls["calls"])
    assert webui.plain_image() == webui.baseline


@A1111
def test_a_view_batch_out_of_memory_is_split_with_the_same_result(webui):
    lines_before = webui.log.read_text().count("[DemoFusion] out of memory") if webui.log else 0
    # 13 views x 2 rows = 26 rows; the probe lets through at most 8: 13 -> 6 -> 3 views per call
    status, r, calls = probed(webui, df(scale=2, view_batch_size=16), oom_above=8)
    assert status == 200, r
    assert "DemoFusion error" not in r["info"]
    # the probe saw each refused size once: the smaller size is kept for the rest of the generation
    assert [c["rows"] for c in calls["calls"] if c["job"] == 1 and c["rows"] > 8] == [26, 12]
    assert webui.log.read_text().count("[DemoFusion] out of memory") == lines_before + 1     # said once
    status, same = webui.txt2img(demofusion(df(scale=2, view_batch_size=3)))
    assert status == 200 and images(r)[0].tobytes() == images(same)[0].tobytes()


@pytest.mark.webui(hosts=["a1111"])
def test_a_single_view_out_of_memory_fails_the_phase_and_returns_the_last_finished_one(webui):
    status, r, _ = probed(webui, df(scale=2), oom_above=1)
    assert status == 200, r
    assert [i.size for i in images(r)] == [(128, 128)]
    info = infotext(r)
    assert "DemoFusion error: \"phase 2 failed: dfapply: 2 rows do not fit" in info, info
    assert webui.plain_image() == webui.baseline


@SCRIPT_LOGIC
def test_a_failed_images_error_is_not_carried_to_the_next_image(webui):
    started_here(webui)
    request = fail_in_phase(demofusion(df(scale=3), n_iter=2, **small(webui)[0]), 3, iteration=0)
    status, r = webui.txt2img(request)                                  # phase 3 of the first image fails
    assert status == 200, r
    side = request["width"]
    assert [i.size for i in images(r)] == [(2 * side, 2 * side), (3 * side, 3 * side)]
    first, second = infotexts(r)
    assert "DemoFusion error" in first and "DemoFusion error" not in second, second
