"""Speed in the real WebUIs (docs/ALGORITHM.md section 7): Exact's images as they were before Fast existed, and
Fast's UNet rows per phase as the plan line counts them."""
import hashlib

import pytest

from demofusion_ext.script.plan_line import plan_counts
from hosts import REFERENCE
from webui_client import (cfg_rows, demofusion, df, has, images, img2img_request, infotext, phase_log_lines, picture,
                          pixel_upscaler, small)

# sha256 of the pixels of every image of exact_requests(), made on this machine's harnesses by the code before Fast
# (commit 1112d9b) and kept: Exact must not change by a byte
EXACT_BEFORE_FAST = {
    "a1111": "ebbabcc7d93e4c233cdb328c0af95fd5fd8723c85be8a267c82d8e7cd2a8c32f",
    "forge": "de44d4448b533cdefe2ce0386e625e48a8958ba37c52da436990b887f78b8daa",
}


def exact_requests(webui):
    size, _ = small(webui)
    side = size["width"]
    return [("txt2img", demofusion(df(scale=2), **size)),
            ("txt2img", demofusion(df(scale=2.5, phase_denoise=0.6, upscaler=pixel_upscaler(webui),
                                      phase_images=True), **size)),
            ("img2img", img2img_request(df(scale=3), picture((2 * side, 2 * side)), **size))]


@pytest.mark.webui(hosts=REFERENCE, models=["sd1"])
def test_exact_images_are_byte_identical_to_those_made_before_fast(webui):
    digest = hashlib.sha256()
    for kind, req in exact_requests(webui):
        status, r = getattr(webui, kind)(req)
        assert status == 200, r
        assert "DemoFusion speed" not in infotext(r)
        for image in images(r):
            digest.update(image.convert("RGB").tobytes())
    print("Exact images' sha256:", digest.hexdigest())
    assert digest.hexdigest() == EXACT_BEFORE_FAST[webui.host]


@pytest.mark.webui(models=["sd1"])
def test_fast_unet_rows_per_phase_are_the_plan_lines(webui):
    """Ten steps: the relay runs the last six, whose timesteps 555 .. 0 put one (111, c2 = 0.03) under the cut-off
    besides t = 0; the API's "speed" fills the other settings."""
    size, want = small(webui)
    before = len(phase_log_lines(webui))
    status, r = webui.txt2img(demofusion([{"speed": "fast", "scale": 2}], steps=10, **size))
    assert status == 200, r
    assert images(r)[0].size == want
    info = infotext(r)
    assert has(info, "DemoFusion speed", "Fast") and has(info, "DemoFusion phase denoise", "0.6") and \
        has(info, "DemoFusion region noise", "1.2") and has(info, "DemoFusion global cutoff", "0.05"), info
    [line] = phase_log_lines(webui)[before:]
    count = plan_counts(size["width"], size["height"], 10, 2, 0.5, relay=True, phase_denoise=0.6,
                        global_cutoff=0.05)[1]
    assert (count["steps"], count["local_steps"], count["global_steps"]) == (6, 6, 4)
    words = line.split()
    assert int(words[5]) == 6 and int(words[11].rstrip(",")) == cfg_rows(webui, count), line


@pytest.mark.webui(hosts=REFERENCE, models=["sd1"])     # the phase loop's logic; each host's relay: the test above
def test_fast_img2img_picture_enters_at_its_phase_and_the_later_one_relays(webui):
    """A picture covering phase 2 of 3 enters there at the user's strength (0.5: the last 3 of 6 steps); phase 3
    relays at 0.6 x 0.5 (the last 2); each phase's rows are the plan line's. Without the region-wise noise, which
    only the enlarged phase 3 gets, the image differs."""
    size, _ = small(webui)
    side = size["width"]
    before = [len(phase_log_lines(webui, k)) for k in (2, 3)]
    status, r = webui.img2img(img2img_request([{"speed": "fast", "scale": 3}], picture((2 * side, 2 * side)),
                                              steps=6, **size))
    assert status == 200, r
    assert images(r)[0].size == (3 * side, 3 * side) and "DemoFusion picture entry: phase 2 of 3" in r["info"]
    counts = plan_counts(side, side, 6, 3, 0.5, 0.5, (2 * side, 2 * side), relay=True, phase_denoise=0.6,
                         global_cutoff=0.05)
    assert [c["steps"] for c in counts] == [0, 3, 2]
    for k, seen in zip((2, 3), before):
        [line] = phase_log_lines(webui, k)[seen:]
        words = line.split()
        assert int(words[5]) == counts[k - 1]["steps"] and \
            int(words[11].rstrip(",")) == cfg_rows(webui, counts[k - 1]), line
    status, quiet = webui.img2img(img2img_request([{"speed": "fast", "scale": 3, "region_noise": 0}],
                                                  picture((2 * side, 2 * side)), steps=6, **size))
    assert status == 200 and images(quiet)[0].tobytes() != images(r)[0].tobytes()      # pixels, not PNG info
