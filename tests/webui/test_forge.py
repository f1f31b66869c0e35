"""What only Forge has: its built-in ControlNet and MultiDiffusion, and its list of always-disabled extensions."""
import pytest

from webui_client import FORGE, REPO, demofusion, images, picture, plain_request

ON = {"enabled": True}
README_FOLDER = "sd-webui-demofusion-ext"      # the folder name README tells users to clone into


@pytest.fixture()
def forge(webui):
    if webui.host != "forge":
        pytest.skip("Forge only")
    return webui


def test_builtin_controlnet_with_demofusion_is_refused_and_leaves_nothing_behind(forge):
    unit = {"enabled": True, "module": "None", "model": "None", "image": picture(), "weight": 1.0}
    status, r = forge.txt2img(plain_request(alwayson_scripts={
        "demofusion_ext": {"args": [dict(ON, scale=2)]}, "controlnet": {"args": [unit]}}))
    assert status == 500 and "Forge's built-in ControlNet" in r["errors"], r
    assert forge.txt2img(plain_request())[1]["images"][0] == forge.baseline


def test_multidiffusion_integrated_with_demofusion_is_refused_before_sampling(forge):
    status, r = forge.txt2img(plain_request(alwayson_scripts={
        "demofusion_ext": {"args": [dict(ON, scale=2)]},
        "multidiffusion integrated": {"args": [True, "MultiDiffusion", 768, 768, 64, 4]}}))
    assert status == 500 and "replaces the UNet call" in r["errors"], r
    assert forge.txt2img(plain_request())[1]["images"][0] == forge.baseline


def test_the_install_folder_is_not_on_forges_always_disabled_list(forge):
    config = (FORGE.tree / "modules_forge" / "config.py").read_text()
    assert f"'{README_FOLDER}'" not in config and f'"{README_FOLDER}"' not in config
    assert README_FOLDER in (REPO / "README.md").read_text()
    names = {s["name"] for s in forge.get("/sdapi/v1/script-info")}
    assert "demofusion_ext" in names                          # loaded, under whatever folder the harness linked


def test_plain_generation_is_byte_identical_after_img2img(forge):
    status, r = forge.call("POST", "/sdapi/v1/img2img", demofusion(
        [dict(ON, scale=2)], init_images=[picture()], denoising_strength=0.6, width=64, height=64))
    assert status == 200 and images(r)[0].size == (128, 128), r
    assert forge.txt2img(plain_request())[1]["images"][0] == forge.baseline
