"""Per-view prompts (AccDiffusion) and window interaction in a real WebUI, both hosts, SD1 and SDXL.

A tiny random model's attention means nothing, so the maps are injected through the engine's seam
(`hosts.view_prompts.phase1_maps`) by the unet probe: "cat" attends to the left half of the picture, "dog" to the
right half, every other word nowhere. The probe labels every row each UNet call received with the text whose
encoding it carries, so the test sees what each view was conditioned on.
"""
import pytest

from hosts import ALL, REFERENCE, SCRIPT_LOGIC
from webui_client import (INJECT, VIEW_PROMPT, assert_windows_got_their_words, demofusion, df, fail_in_phase, images,
                          infotext, infotexts, phase_log_lines, picture, probe, small, started_here, stop_in_phase,
                          view_rows, xyz_axis_choices, xyz_plot)

# the subject is the model's conditioning (its text encoders, SDXL's pooled vector): every model of every host
pytestmark = pytest.mark.webui(models=ALL)


def request(webui, inject=True, steps=4, **settings):
    """txt2img at 2x with the unet probe; `inject`: with the synthetic maps and row labels."""
    started_here(webui)
    size, _ = small(webui)
    req = demofusion(df(**{"scale": 2, "random_jitter": False, **settings}), prompt=VIEW_PROMPT,
                     negative_prompt="blurry", steps=steps, **size)
    return probe(req, "dfunet", *([True, INJECT] if inject else [True]))


@SCRIPT_LOGIC
def test_each_window_gets_the_words_its_area_drew(webui):
    status, r = webui.txt2img(request(webui, patch_prompts=True))
    assert status == 200, r
    calls = webui.get("/dfunet/calls")["calls"]
    first = [c for c in calls if c["job"] == 0]
    assert first and all(set(c["labels"]) == {"full", "neg"} or view_rows(webui, c["labels"]) == 1 == len(c["labels"])
                         for c in first)                                        # phase 1: the whole prompt
    assert_windows_got_their_words(webui, calls)
    info = infotext(r)
    assert "DemoFusion per-view prompts: True" in info and "DemoFusion prompt keep threshold: 0.3" in info
    if webui.log:                   # a harness server started here
        line = phase_log_lines(webui)[-1]
        assert "per-view prompts: 9 of 9 windows, 3 text(s) encoded" in line, line
    assert webui.get("/dfunet/hooks") == {"forward": 0, "pre": 0}


@SCRIPT_LOGIC
def test_threshold_zero_keeps_every_word_and_the_image_of_the_feature_off(webui):
    off = webui.txt2img(request(webui, inject=False))
    zero = webui.txt2img(request(webui, inject=False, patch_prompts=True, prompt_keep_threshold=0.0))
    assert off[0] == zero[0] == 200
    assert images(off[1])[0].tobytes() == images(zero[1])[0].tobytes()
    assert webui.get("/dfunet/hooks") == {"forward": 0, "pre": 0}


@pytest.mark.webui(models=["sd1"])        # the dilated views' latents, whatever the model
def test_window_interaction_changes_the_image_and_repeats(webui):
    a = webui.txt2img(request(webui, inject=False, steps=2))
    b = webui.txt2img(request(webui, inject=False, steps=2, window_interaction=True))
    c = webui.txt2img(request(webui, inject=False, steps=2, window_interaction=True))
    assert a[0] == b[0] == c[0] == 200
    assert images(b[1])[0].tobytes() == images(c[1])[0].tobytes()
    assert images(a[1])[0].tobytes() != images(b[1])[0].tobytes()
    assert "DemoFusion window interaction: True" in infotext(b[1])


@SCRIPT_LOGIC
def test_img2img_takes_the_maps_from_the_pictures_own_denoising(webui):
    size, _ = small(webui)
    req = dict(request(webui, patch_prompts=True), init_images=[picture((size["width"], size["height"]))],
               denoising_strength=0.6)
    status, r = webui.img2img(req)
    assert status == 200, r
    assert_windows_got_their_words(webui, webui.get("/dfunet/calls")["calls"])
    assert webui.get("/dfunet/hooks") == {"forward": 0, "pre": 0}


@SCRIPT_LOGIC
def test_a_failed_or_interrupted_phase_with_per_view_prompts_leaves_nothing_behind(webui):
    status, r = webui.txt2img(fail_in_phase(request(webui, patch_prompts=True, scale=3), 3))
    assert status == 200 and "phase 3 failed" in infotext(r)
    assert webui.get("/dfunet/hooks") == {"forward": 0, "pre": 0}
    assert webui.plain_image() == webui.baseline
    status, r = webui.txt2img(stop_in_phase(request(webui, inject=False, patch_prompts=True, window_interaction=True,
                                                    scale=3), 2))
    assert status == 200 and "interrupted in phase 2 of 3" in infotext(r), r
    assert webui.get("/dfunet/hooks") == {"forward": 0, "pre": 0}
    assert webui.plain_image() == webui.baseline


SYNTAX = {
    "plain": "a photo of a cat sitting on a mat",
    "emphasis": "a (cat:1.3) on a ((red)) mat, [blurry] photorealistic",
    "escaped": r"a \(cat\) in a box",
    "break": "a cat BREAK a dog",
    "long": "a red cat, " * 20 + "a dog",              # over 75 tokens: a second chunk, comma backtracking
    "lora": "<lora:not-installed:0.8> a cat on a mat",
    "editing": "a [cat:dog:0.5] in a field",
    "alternation": "a [cat|dog] in a field",
    "and": "a cat AND a dog",
}


def test_the_word_model_follows_the_webuis_own_tokenization(webui):
    """For each piece of prompt syntax, on the host's own parser and CLIP tokenizer: the words, and a view text of
    every word and of every other word that tokenizes back to exactly those tokens and weights; or the fallback."""
    status, r = webui.call("POST", "/dfunet/words", {"prompts": list(SYNTAX.values())})
    assert status == 200, r
    res = dict(zip(SYNTAX, r))
    for name in ("plain", "emphasis", "escaped", "break", "long", "lora"):
        assert res[name]["all"]["ok"] and res[name]["half"]["ok"], (name, res[name])
    assert res["plain"]["words"] == "a photo of a cat sitting on a mat".split()
    assert "(cat:1.3)" in res["emphasis"]["all"]["text"] and "photorealistic" in res["emphasis"]["words"]
    assert r"\(cat\)" in res["escaped"]["all"]["text"]
    assert "BREAK" in res["break"]["half"]["text"]
    assert max(res["long"]["positions"]) >= 77                          # words of the second chunk are mapped
    assert res["lora"]["words"][:2] == ["a", "cat"]
    assert "prompt editing" in res["editing"]["fallback"] and "prompt editing" in res["alternation"]["fallback"]
    assert "AND" in res["and"]["fallback"]


@pytest.mark.webui(hosts=["a1111"], models=["sd1"])
def test_a_prompt_with_an_embedding_keeps_the_full_prompt(webui):
    """A1111 SD1: it reloads embeddings over its API (an SDXL embedding needs CLIP-L and CLIP-G vectors)."""
    started_here(webui, "needs the harness tree of a server started here")
    import torch
    from safetensors.torch import save_file
    width = webui.get("/dfunet/textwidth")["width"]
    folder = webui.log.parents[1] / webui.spec.tree / "embeddings"
    path = folder / "dfwordtest.safetensors"
    save_file({"emb_params": torch.randn(2, width)}, str(path))
    try:
        webui.call("POST", "/sdapi/v1/refresh-embeddings")
        assert "dfwordtest" in webui.get("/sdapi/v1/embeddings")["loaded"]
        status, r = webui.call("POST", "/dfunet/words", {"prompts": ["a photo of dfwordtest on a mat"]})
        assert status == 200 and "embedding" in r[0]["fallback"], r
    finally:
        path.unlink()
        webui.call("POST", "/sdapi/v1/refresh-embeddings")


@pytest.mark.webui(hosts=REFERENCE, models=["sd1"])    # the axes are the script's, not the model's or host's
def test_xyz_axes_over_the_anti_repetition_options(webui):
    size, want = small(webui)
    plot = xyz_plot(xyz_axis_choices(webui), ("[DemoFusion] Window interaction", ["False", "True"]),
                    ("[DemoFusion] Prompt keep threshold", "0.3, 0.5"))
    status, r = webui.txt2img(dict(demofusion(df(patch_prompts=True), **size), **plot))
    assert status == 200, r
    infos = infotexts(r)[1:]
    assert sum("DemoFusion window interaction: True" in i for i in infos) == 2
    assert sum("DemoFusion prompt keep threshold: 0.5" in i for i in infos) == 2
    assert [i.size for i in images(r)][1:] == [want] * 4
