import torch
import pytest

from demofusion_ext import EvalCounter, tiled_decode, tiled_encode


def psnr(a, b):
    peak = b.max() - b.min()
    return float(10 * torch.log10(peak ** 2 / ((a - b) ** 2).mean()))


@pytest.fixture(scope="module")
def latent():
    return torch.randn(1, 4, 64, 48, generator=torch.Generator().manual_seed(0))


def test_tiled_decode_matches_full_decode(vae, latent):
    full = vae.decode(latent).sample
    areas = []
    tiled = tiled_decode(lambda z: areas.append(z.shape[-2] * z.shape[-1]) or vae.decode(z).sample, latent,
                         tile=40, overlap=10)
    assert tiled.shape == full.shape == (1, 3, 512, 384)
    assert len(areas) == 4 and psnr(tiled, full) >= 40
    # 2 x 2 tiles shrunk to cover the latent evenly: 37 x 29 cells, not 40 x 40 pushed flush with the border
    assert sum(areas) / (64 * 48) <= 1.4


def test_tiled_decode_memory_is_bounded_by_the_tile(vae, latent):
    sizes = []
    tiled_decode(lambda z: sizes.append(tuple(z.shape[-2:])) or vae.decode(z).sample, latent, tile=32, overlap=8)
    assert max(h * w for h, w in sizes) <= 32 * 32


def test_tiled_encode_matches_full_encode(vae, latent):
    with torch.no_grad():
        image = vae.decode(latent).sample.clamp(-1, 1)
    encode = lambda x: vae.encode(x).latent_dist.mean
    full = encode(image)
    tiled = tiled_encode(encode, image, tile=384, overlap=96)
    assert tiled.shape == full.shape == latent.shape and psnr(tiled, full) >= 40


def test_small_inputs_are_one_call(vae):
    z = torch.randn(1, 4, 8, 8)
    calls = EvalCounter(lambda q: vae.decode(q).sample)
    assert torch.equal(tiled_decode(calls, z, tile=16), vae.decode(z).sample) and calls.calls == 1
