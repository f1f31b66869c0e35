"""Session fixtures over the tiny real components of tiny_models.py."""
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
torch.set_num_threads(min(2, torch.get_num_threads()))

from tiny_models import tiny_unet, tiny_vae  # noqa: E402


@pytest.fixture(scope="session")
def unet_sd1():
    return tiny_unet()


@pytest.fixture(scope="session")
def unet_sdxl():
    return tiny_unet(sdxl=True)


@pytest.fixture(scope="session")
def vae():
    return tiny_vae()


@pytest.fixture(scope="session")
def text():
    g = torch.Generator().manual_seed(1)
    return torch.randn(1, 8, 32, generator=g)
