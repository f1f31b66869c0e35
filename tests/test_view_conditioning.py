import math

import torch

from demofusion_ext.view_conditioning import CropColumns, split_cond
from demofusion_ext.views import View


def embed(t, dim=4):
    """A sinusoidal embedding of each number, like the hosts' size embedders (one row per number)."""
    freqs = torch.exp(-math.log(10000) * torch.arange(dim // 2) / (dim // 2))
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def test_each_local_view_gets_its_own_crop_columns_and_globals_keep_the_prompts():
    rows, dim = 2, 4
    pooled = torch.randn(rows, 3)
    sizes = [embed(torch.tensor([v]), dim) for v in (64.0, 64.0, 0.0, 0.0, 64.0, 64.0)]
    y = torch.cat([pooled] + [s.repeat(rows, 1) for s in sizes], dim=1)          # [pooled | orig | crop | target]
    views = [View("local", 0, 0, 8, 8), View("local", 4, 6, 8, 8), View("global", 0, 1, 8, 8, step=2)]
    c = {"c_crossattn": torch.randn(rows, 5, 7), "y": y, "c_concat": torch.randn(rows, 4, 16, 16)}
    out = split_cond(c, views, rows, (16, 16), CropColumns(embed, dim), vector_key="y")
    assert out["c_crossattn"].shape == (3 * rows, 5, 7) and torch.equal(out["c_crossattn"][rows:2 * rows], c["c_crossattn"])
    assert out["c_concat"].shape == (3 * rows, 4, 8, 8)
    assert torch.equal(out["c_concat"][rows:2 * rows], c["c_concat"][..., 4:12, 6:14])
    crop = slice(3 + 2 * dim, 3 + 4 * dim)
    second = out["y"][rows:2 * rows, crop]
    assert torch.allclose(second, torch.cat([embed(torch.tensor([32.0]), dim), embed(torch.tensor([48.0]), dim)], 1).repeat(rows, 1))
    assert torch.equal(out["y"][2 * rows:], y)                              # a global view keeps the prompt's
    keep = [i for i in range(y.shape[1]) if not crop.start <= i < crop.stop]
    assert torch.equal(out["y"][:, keep], y.repeat(3, 1)[:, keep])
