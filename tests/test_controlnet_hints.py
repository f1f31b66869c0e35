import torch

from demofusion_ext import make_layout
from demofusion_ext.controlnet_hints import PhaseHints, phase_hint, unsupported_unit, view_hints


class Unit:
    """Stands in for a ControlNet unit's parameters: only the hint attributes the module reads."""
    def __init__(self, hint):
        self.hint_cond, self.hr_hint_cond = hint, None


def coordinate_hint(h, w):
    """Channels 0/1 hold each pixel's own column/row, so any crop says where it came from."""
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    return torch.stack([xs, ys, torch.zeros_like(xs)])[None]


def test_each_view_gets_its_region_of_the_phase_hint_in_row_order():
    full = coordinate_hint(40 * 8, 36 * 8)
    layout = make_layout(40, 36, (16, 16), 0.5, 3, multiple=8)
    views = list(layout.local[:2]) + list(layout.dilated[:2])
    hints = view_hints(full, views, rows=4)
    assert hints.shape == (16, 3, 8 * 16, 8 * 16)
    for i, v in enumerate(views):
        block = hints[4 * i:4 * i + 4]
        assert torch.equal(block[0], block[3])                    # cond and uncond rows alike
        top_left = block[0, :, 0, 0]
        if v.kind == "local":
            assert (top_left[0], top_left[1]) == (8 * v.left, 8 * v.top)
            assert block[0, 0, 0, 8] - block[0, 0, 0, 0] == 8     # contiguous pixels
        else:
            step = v.step * 8                                     # 8x8 blocks at the dilation stride
            rows_ = torch.arange(v.height) * step + 8 * v.top
            valid = rows_ >= 0
            assert torch.equal(block[0, 1, ::8, -8][valid], rows_[valid].float())   # last column: never padding


def test_units_get_their_hints_back_after_each_call():
    unit = Unit(torch.rand(1, 3, 128, 128))
    original = unit.hint_cond
    hints = PhaseHints([unit], (32, 32))
    assert hints.full[0].shape == (1, 3, 256, 256) and hints.nbytes == 256 * 256 * 3 * 4
    layout = make_layout(32, 32, (16, 16), 0.5, 2)
    with hints.serving(layout.local[:3], rows=2):
        assert unit.hint_cond.shape == (6, 3, 128, 128)
    assert unit.hint_cond is original


def test_phase_hint_upscales_and_refusals_name_the_reason():
    assert phase_hint(torch.rand(1, 3, 64, 48), (16, 12)).shape == (1, 3, 128, 96)
    assert unsupported_unit(Unit(torch.rand(1, 3, 8, 8))) is None
    assert "4 channels" in unsupported_unit(Unit(torch.rand(1, 4, 8, 8)))
    assert "no image hint" in unsupported_unit(Unit(None))
