"""What only Forge has: its built-in UNet patches (FreeU, SAG, LoRA) in DemoFusion's phases, MultiDiffusion
Integrated refused, and its list of always-disabled extensions. Its built-in ControlNet: test_forge_controlnet.py."""
import json

import numpy as np
import pytest

from hosts import ALL, FORGE_FAMILY, README_FOLDER, REPO
from servers import extra_server
from webui_client import (demofusion, df, images, img2img_request, infotext, phase_log_lines, picture, pixels,
                          plain_request, probe, started_here)

pytestmark = pytest.mark.webui(hosts=FORGE_FAMILY)


SCRIPTS = {"MultiDiffusion": "multidiffusion integrated", "FreeU": "freeu integrated (sd 1.x, sd 2.x, sdxl)",
           "SAG": "selfattentionguidance integrated (sd 1.x, sd 2.x, sdxl)"}


def needs_builtin(webui, name):
    """Skip where the host does not ship Forge's built-in `name` (hosts.py), after checking that it is not served."""
    if name not in webui.spec.builtins:
        assert SCRIPTS[name] not in {s["name"] for s in webui.get("/sdapi/v1/script-info")}
        pytest.skip(f"{webui.spec.title} has no built-in {name} (checked: not among its scripts)")


def test_multidiffusion_integrated_with_demofusion_is_refused_before_sampling(webui):
    needs_builtin(webui, "MultiDiffusion")
    # in img2img, where every host that ships it offers it (Neo only there)
    req = img2img_request(df(scale=2), strength=0.6, width=64, height=64)
    req["alwayson_scripts"][SCRIPTS["MultiDiffusion"]] = {"args": [True, "MultiDiffusion", 768, 768, 64, 4]}
    status, r = webui.img2img(req)
    assert status == 500 and "replaces the UNet call" in r["errors"], r
    assert webui.plain_image() == webui.baseline


def test_the_install_folder_is_not_on_forges_always_disabled_list(webui):
    config = (webui.spec.webui_dir / "modules_forge" / "config.py").read_text()
    assert f"'{README_FOLDER}'" not in config and f'"{README_FOLDER}"' not in config
    assert README_FOLDER in (REPO / "README.md").read_text()
    names = {s["name"] for s in webui.get("/sdapi/v1/script-info")}
    assert "demofusion_ext" in names                          # loaded (the harness linked it as README_FOLDER)


def test_plain_generation_is_byte_identical_after_img2img(webui):
    status, r = webui.img2img(img2img_request(df(scale=2), strength=0.6, width=64, height=64))
    assert status == 200 and images(r)[0].size == (128, 128), r
    assert webui.plain_image() == webui.baseline


def tiny_lora(checkpoint, out, rank=4, seed=0):
    """A random LoRA over every linear weight of the checkpoint's transformer blocks, in the LDM key names Forge
    maps (lora_unet_<module path with _>), strong enough to change a tiny random model's image."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file
    prefix = "model.diffusion_model."
    g = torch.Generator().manual_seed(seed)
    tensors = {}
    with safe_open(str(checkpoint), "pt") as f:
        for key in f.keys():
            if key.startswith(prefix) and ".transformer_blocks." in key and key.endswith(".weight"):
                shape = f.get_slice(key).get_shape()
                if len(shape) != 2:
                    continue
                name = "lora_unet_" + key[len(prefix):-len(".weight")].replace(".", "_")
                tensors[name + ".lora_down.weight"] = torch.randn(rank, shape[1], generator=g) / shape[1] ** 0.5
                tensors[name + ".lora_up.weight"] = torch.randn(shape[0], rank, generator=g) / rank ** 0.5
                tensors[name + ".alpha"] = torch.tensor(float(rank))
    save_file(tensors, str(out))


PATCHES = {"FreeU": {SCRIPTS["FreeU"]: {"args": [True, 1.5, 1.6, 0.9, 0.2, 0.0, 1.0]}},
           "SAG": {SCRIPTS["SAG"]: {"args": [True, 2.0, 2.0, 0.5]}}}


UNPATCHED = {}          # (host, model) -> the unpatched request's two answers


@pytest.mark.webui(models=ALL)        # the patches act on the model's own UNet
@pytest.mark.parametrize("patch", ["FreeU", "SAG", "LoRA"])
def test_forges_unet_patches_are_active_in_demofusion_phases(webui, patch):
    """A picture that covers phase 2 enters there, so every step of the run is a DemoFusion phase: a patch that
    changes this image is active in DemoFusion's phases (not only in the WebUI's own phase 1)."""
    if patch != "LoRA":
        needs_builtin(webui, patch)
    if patch == "FreeU" and webui.sdxl:
        pytest.skip("the tiny SDXL UNet is 320 channels wide at every level, where FreeU changes nothing")
    if patch == "LoRA" and webui.sdxl:
        pytest.skip("a LoRA is weight arithmetic on the UNet the phases use, the same for every model: SD1 covers it")
    started_here(webui, "needs the harness tree (a LoRA file) of a server started here")
    if patch == "SAG" and webui.sdxl:
        status, r = webui.txt2img(dict(plain_request(width=64, height=64, steps=1), alwayson_scripts=PATCHES["SAG"]))
        assert status == 500 and "'NoneType' object has no attribute 'shape'" in r["errors"], r
        pytest.skip("SAG fails on the tiny SDXL model even without DemoFusion (checked above): its UNet has no "
                    "middle-block attention, where SAG records its map")
    req = img2img_request(df(scale=2), picture((128, 128)), strength=0.6, width=64, height=64, steps=3)
    key = (webui.host, webui.model)
    if key not in UNPATCHED:            # the same request twice, once per model for all its patches
        UNPATCHED[key] = [webui.img2img(req) for _ in range(2)]
    plain = UNPATCHED[key]
    assert all(status == 200 for status, _ in plain), plain[0]
    assert "DemoFusion picture entry: phase 2 of 2" in plain[0][1]["info"]
    patched = json.loads(json.dumps(req))
    if patch == "LoRA":
        checkpoint = webui.spec.models[webui.model].checkpoint
        lora = webui.spec.webui_dir / "models" / "Lora" / f"demofusion-test-{checkpoint.rsplit('.', 1)[0]}.safetensors"
        lora.parent.mkdir(exist_ok=True)
        if not lora.exists():
            tiny_lora(webui.spec.webui_dir / "models" / "Stable-diffusion" / checkpoint, lora)
        webui.call("POST", "/sdapi/v1/refresh-loras")
        patched["prompt"] += f" <lora:{lora.stem}:1>"
    else:
        patched["alwayson_scripts"].update(PATCHES[patch])
    status, r = webui.img2img(patched)
    assert status == 200, r
    a, b, c = (pixels(x) for x in (plain[0][1], plain[1][1], r))
    assert np.abs(a - b).mean() < 0.1                  # the same request again: the same picture
    assert np.abs(a - c).mean() > 1.0, patch
    assert webui.plain_image() == webui.baseline


def test_memory_is_planned_for_the_view_batch_in_use(webui):
    """An out-of-memory error in phase 2 shrinks the view batch (13 views x 2 rows -> 6 -> 3 views per call, the
    probe letting at most 8 rows through); phase 3 then plans memory for 3 views, not the setting's 16."""
    started_here(webui)
    req = probe(demofusion(df(scale=3, view_batch_size=16), width=64, height=64), "dfunet", True, None, 8)
    status, r = webui.txt2img(req)
    assert status == 200 and "DemoFusion error" not in r["info"], r
    assert images(r)[0].size == (192, 192)
    planned = {m["job"]: m["shape"][0] for m in webui.get("/dfunet/calls")["memory"]}
    assert planned == {0: 2, 1: 2 * 16, 2: 2 * 3}, planned


V_PREDICTION = {}         # the eps SDXL's image, for the v-prediction one (tests run model by model: sdxl first)


@pytest.mark.webui(hosts=["neo"], models=["sdxl", "vpred"])
def test_a_v_prediction_zero_terminal_snr_checkpoint_runs_and_differs_from_eps(webui):
    """Neo detects v-prediction with zero terminal SNR from the checkpoint: its first sigma is about 4.5e3, far above
    SD's 14.6, which the skip residual and the blur of the dilated views meet in every phase."""
    status, r = webui.txt2img(demofusion(df(scale=2, phase_images=True), steps=3, width=64, height=64))
    assert status == 200, r
    info = infotext(r)
    assert "DemoFusion error" not in info and [i.size for i in images(r)] == [(128, 128), (64, 64)], info
    final = pixels(r)
    assert np.isfinite(final).all() and final.std() > 1.0          # a picture, not a NaN-black or flat one
    assert ("Noise Schedule: Zero Terminal SNR" in info) == (webui.model == "vpred"), info
    V_PREDICTION[webui.model] = final
    if webui.model == "vpred":
        assert "sdxl" in V_PREDICTION, "runs after the eps SDXL's instance"
        assert np.abs(final - V_PREDICTION["sdxl"]).mean() > 1.0


@pytest.mark.webui(hosts=["neo"])
def test_a_model_family_demofusion_cannot_run_is_refused_by_name_before_any_work(webui):
    """Neo loads many families besides SD1 and SDXL; a Mugen checkpoint (tests/hosts/tiny_models/make_tiny_mugen.py:
    the cheapest of them here) is refused with its family named, and no phase runs."""
    if not (webui.spec.webui_dir / "models" / "Stable-diffusion" / webui.spec.models["mugen"].checkpoint).exists():
        pytest.skip("no tiny Mugen in the Neo harness: rerun tests/hosts/forge-neo/setup.sh")
    with extra_server("neo", model="mugen") as mugen:
        status, r = mugen.txt2img(demofusion(df(scale=2), width=64, height=64, steps=2))
        assert status == 500, r
        assert "not this Mugen model" in r["errors"] and "load an SD1.x or SDXL checkpoint" in r["errors"], r
        assert not phase_log_lines(mugen), phase_log_lines(mugen)
