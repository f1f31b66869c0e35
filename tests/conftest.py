"""Tiny real components with random weights (diffusers configs), shared by the engine tests."""
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
torch.set_num_threads(min(2, torch.get_num_threads()))


def _seeded(build):
    torch.manual_seed(0)
    return build().eval().requires_grad_(False)


@pytest.fixture(scope="session")
def unet_sd1():
    """An SD1-style UNet (cross-attention on a 32-wide text context), base latent 16x16."""
    from diffusers import UNet2DConditionModel
    return _seeded(lambda: UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=32))


@pytest.fixture(scope="session")
def unet_sdxl():
    """An SDXL-style UNet: text_time added conditions (pooled text + 6 size/crop numbers)."""
    from diffusers import UNet2DConditionModel
    return _seeded(lambda: UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=32, addition_embed_type="text_time",
        addition_time_embed_dim=8, projection_class_embeddings_input_dim=32 + 6 * 8))


@pytest.fixture(scope="session")
def vae():
    """An SD-shaped AutoencoderKL (8x, 4 latent channels) at tiny width."""
    from diffusers import AutoencoderKL
    return _seeded(lambda: AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(32, 32, 64, 64), layers_per_block=1,
        latent_channels=4, norm_num_groups=32, sample_size=64))


@pytest.fixture(scope="session")
def text():
    g = torch.Generator().manual_seed(1)
    return torch.randn(1, 8, 32, generator=g)
