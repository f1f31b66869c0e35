import torch
import pytest

from demofusion_ext import CallCounter, tiled_decode, tiled_encode


def psnr(a, b):
    peak = b.max() - b.min()
    return float(10 * torch.log10(peak ** 2 / ((a - b) ** 2).mean()))


@pytest.fixture(scope="module")
def latent():
    return torch.randn(1, 4, 64, 48, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def full(vae, latent):
    return vae.decode(latent).sample


def test_tiled_decode_matches_full_decode(vae, latent, full):
    areas = []
    tiled = tiled_decode(lambda z: areas.append(z.shape[-2] * z.shape[-1]) or vae.decode(z).sample, latent,
                         tile=40, overlap=10)
    assert tiled.shape == full.shape == (1, 3, 512, 384)
    assert len(areas) == 4 and psnr(tiled, full) >= 40
    # 2 x 2 tiles shrunk to cover the latent evenly: 37 x 29 cells, not 40 x 40 pushed flush with the border
    assert sum(areas) / (64 * 48) <= 1.4


@pytest.fixture(scope="module")
def tiled_32(vae, latent):
    """Tiles of 32 latent cells overlapping by 8, and the tile sizes the decoder saw."""
    sizes = []
    image = tiled_decode(lambda z: sizes.append(tuple(z.shape[-2:])) or vae.decode(z).sample, latent, tile=32, overlap=8)
    return image, sizes


def test_tiled_decode_memory_is_bounded_by_the_tile(tiled_32):
    assert max(h * w for h, w in tiled_32[1]) <= 32 * 32


def test_no_seam_at_tile_borders(full, tiled_32, latent):
    """A seam is local, so PSNR over the image misses it: look at the tile borders themselves.

    Two things show a seam, along each axis: (1) a tile's own border pixels (they saw the least context) showing
    through, as more error within 4 px of the tile edges than elsewhere; (2) a hard cut inside the overlap, as a
    step in the error from one pixel line to the next. Measured with the blend (seed 0): (1) 1.12x, (2) 1.04x / 1.07x;
    with fades that are all 1 (both tiles averaged up to their edges) (1) 1.65x; with fades that are a step in the
    middle of the overlap (a hard cut) (2) 2.25x / 2.08x."""
    from demofusion_ext.tiled_vae import _axis
    error = tiled_32[0] - full
    for axis, length in ((2, latent.shape[2]), (3, latent.shape[3])):
        size, spans = _axis(length, 32, 8, 1)
        assert len(spans) >= 2
        edges = [8 * s for s, _, _ in spans[1:]] + [8 * (s + size) for s, _, _ in spans[:-1]]
        zones = [(8 * s, 8 * (spans[i][0] + size)) for i, (s, _, _) in enumerate(spans[1:])]
        other = tuple(d for d in range(4) if d != axis)
        profile = error.abs().mean(other)                        # mean abs error of each pixel line
        near = torch.zeros_like(profile, dtype=torch.bool)
        for e in edges:
            near[e - 4:e + 4] = True
        assert profile[near].mean() <= 1.35 * profile[~near].mean()
        step = error.diff(dim=axis).abs().mean(other)            # change of the error from line to line
        inside = torch.zeros_like(step, dtype=torch.bool)
        for a, b in zones:
            inside[a:b] = True
        assert step[inside].max() <= 1.7 * step[~inside][8:-8].max()


def test_tiled_encode_matches_full_encode(vae, latent):
    with torch.no_grad():
        image = vae.decode(latent).sample.clamp(-1, 1)
    encode = lambda x: vae.encode(x).latent_dist.mean
    full = encode(image)
    tiled = tiled_encode(encode, image, tile=384, overlap=96)
    assert tiled.shape == full.shape == latent.shape and psnr(tiled, full) >= 40


def test_small_inputs_are_one_call(vae):
    z = torch.randn(1, 4, 8, 8)
    calls = CallCounter(lambda q: vae.decode(q).sample)
    assert torch.equal(tiled_decode(calls, z, tile=16), vae.decode(z).sample) and calls.calls == 1
