"""Control images whose pixels say where they came from, and finding a view's place from a hint's pixels
(the ControlNet tests of both hosts)."""
import base64
import io

import numpy as np
from PIL import Image


def png(rgb):
    b = io.BytesIO()
    Image.fromarray((np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)).save(b, format="PNG")
    return base64.b64encode(b.getvalue()).decode()


def coordinate_image(w, h):
    """Red = x / (w - 1), green = y / (h - 1): every hint pixel tells where in the picture it came from."""
    y, x = np.mgrid[0:h, 0:w]
    return png(np.stack([x / (w - 1), y / (h - 1), np.zeros((h, w))], -1))


def stripes(w, h):
    x = np.mgrid[0:h, 0:w][1]
    return png(np.repeat(((x // 8) % 2)[..., None], 3, -1).astype(float))


def phase_picture(b64, height, width):
    """The control image as ControlNet hands it over (8-bit, [0, 1]), enlarged as the engine does to a phase."""
    import torch
    img = torch.from_numpy(np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB"), dtype=np.float32))
    img = img.permute(2, 0, 1)[None] / 255
    out = torch.nn.functional.interpolate(img, size=(height, width), mode="bilinear", align_corners=False)
    return out.clamp(0, 1)[0, :2].numpy()


def view_place(picture, hint, row, lh, lw, dilation, tol=2e-3):
    """(top, left, step) of a view whose crop of `picture` gives the probe's four pixels of `row`, or None.
    Cells outside the picture read 0."""
    ph, pw = picture.shape[1] // 8, picture.shape[2] // 8
    m = (max(lh, lw) + 2) * dilation                       # zero margin, in cells
    padded = np.pad(picture, ((0, 0), (8 * m, 8 * m), (8 * m, 8 * m)))
    probes = [np.array(hint[k][row])[:, None, None] for k in ("at00", "at08", "at80", "last")]
    tops, lefts = np.meshgrid(np.arange(-lh, ph + 1), np.arange(-lw, pw + 1), indexing="ij")

    def at(r, c, offset=0):
        return padded[:, (r + m) * 8 + offset, (c + m) * 8 + offset]
    for step in (1, dilation):
        want = [at(tops, lefts), at(tops, lefts + step), at(tops + step, lefts),
                at(tops + (lh - 1) * step, lefts + (lw - 1) * step, 7)]
        err = np.max([np.abs(w - p).max(0) for w, p in zip(want, probes)], axis=0)
        hits = np.argwhere(err < tol)
        if len(hits):
            return int(tops[tuple(hits[0])]), int(lefts[tuple(hits[0])]), step
    return None
