"""img2img upscaling with DemoFusion in a real WebUI."""
import numpy as np
import pytest
from PIL import Image

from hosts import SCRIPT_LOGIC
from webui_client import df, images, img2img_request, infotexts, picture, small


def psnr(a: Image.Image, b: Image.Image) -> float:
    x = np.asarray(a.convert("RGB").resize(b.size, Image.BICUBIC), dtype=np.float64)
    y = np.asarray(b.convert("RGB"), dtype=np.float64)
    return float(10 * np.log10(255 ** 2 / ((x - y) ** 2).mean()))


@SCRIPT_LOGIC
@pytest.mark.parametrize("scale", [2, 2.5])
def test_img2img_scales_a_picture_of_the_base_size(webui, scale):
    size, _ = small(webui)
    status, r = webui.img2img(img2img_request(df(scale=scale), picture((size["width"],) * 2), **size))
    assert status == 200, r
    [img] = images(r)
    assert img.size == (scale * size["width"], scale * size["height"])
    assert f"DemoFusion scale: {float(scale)}" in r["info"] and "Denoising strength: 0.5" in r["info"]


@SCRIPT_LOGIC
def test_lower_strength_stays_closer_to_the_picture(webui):
    # The tiny model's random VAE neither reproduces pictures nor decodes an enlarged latent like an enlarged
    # picture, so the reference is the picture as this pipeline sees it unchanged: DemoFusion at strength 0.02
    # (the init latent, enlarged and decoded, with almost no denoising).
    size, _ = small(webui)

    def run(strength):
        status, r = webui.img2img(img2img_request(df(scale=2), strength=strength, steps=4, **size))
        assert status == 200, r
        return images(r)[0]
    reference = run(0.02)
    scores = [psnr(run(s), reference) for s in (0.05, 0.2, 0.5, 1.0)]
    print("PSNR against the unchanged picture by strength 0.05/0.2/0.5/1.0:", [round(s, 2) for s in scores])
    assert scores == sorted(scores, reverse=True) and scores[0] - scores[-1] > 3


@SCRIPT_LOGIC
def test_img2img_phase_images_in_order(webui):
    size, _ = small(webui)
    side = size["width"]
    status, r = webui.img2img(img2img_request(df(scale=3, phase_images=True), picture((side, side)), **size))
    assert status == 200, r
    assert [i.size for i in images(r)] == [(3 * side, 3 * side), (side, side), (2 * side, 2 * side)]
    infos = infotexts(r)
    assert infos[1].endswith("DemoFusion phase: 1 of 3") and infos[2].endswith("DemoFusion phase: 2 of 3")


def test_masks_are_refused(webui):
    status, r = webui.img2img(img2img_request(df(), mask=picture()))
    assert status == 500 and "cannot inpaint" in r["errors"]
    assert webui.plain_image() == webui.baseline
