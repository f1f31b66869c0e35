"""Per-view ControlNet hints: every UNet call of a phase >= 2 gets, for every unit, a hint of exactly
8x its latent, cut from a phase-size hint the way the call's views were cut from the latent.

Works on any objects with a `hint_cond` tensor [B, C, 8H, 8W] (sd-webui-controlnet's ControlParams),
without importing ControlNet. The phase-size hint is the unit's prepared phase-1 hint, upscaled: the
preprocessor ran once, at the size it was made for, and every phase sees the same control image.
Phase hints stay on the unit's device in its dtype; each call's hints are one tensor of the call's size,
filled from the phase hint without any other copy.
"""
from __future__ import annotations

import contextlib
from typing import Sequence

import torch
import torch.nn.functional as F

from .views import View

# unit kinds whose control is a spatial hint added to the UNet, which views can carry
SERVED_MODEL_TYPES = {"ControlNet", "ControlLoRA", "ControlNetUnion"}


def unsupported_unit(param) -> str | None:
    """Why a unit cannot be served per view, or None."""
    kind = getattr(getattr(param, "control_model_type", None), "name", "ControlNet")
    if kind not in SERVED_MODEL_TYPES:
        return f"its model type {kind} works on whole-image features, not on a spatial hint"
    hint = getattr(param, "hint_cond", None)
    if not isinstance(hint, torch.Tensor) or hint.ndim != 4:
        return "it has no image hint"
    if hint.shape[1] != 3:
        return f"its hint has {hint.shape[1]} channels (inpainting units keep a mask and a VAE latent)"
    return None


def phase_hint(hint: torch.Tensor, latent_shape: tuple[int, int], cell: int = 8) -> torch.Tensor:
    """The unit's hint at cell x the phase latent, on the hint's device in its dtype (resized in float32)."""
    size = (latent_shape[0] * cell, latent_shape[1] * cell)
    hint = hint.detach()
    if tuple(hint.shape[-2:]) == size:
        return hint
    wide = F.interpolate(hint.float(), size=size, mode="bilinear", align_corners=False).clamp(0, 1)
    return wide.to(hint.dtype)


def view_hints(full: torch.Tensor, views: Sequence[View], rows: int, cell: int = 8) -> torch.Tensor:
    """One hint row per row of x: views are view-major, each view's rows are the images' cond/uncond rows.
    One allocation of the call's size on `full`'s device; every crop is copied straight into it."""
    batch, channels = full.shape[:2]
    if rows % batch:
        raise ValueError(f"a hint of {batch} images cannot follow {rows} rows")
    height, width = views[0].height * cell, views[0].width * cell
    out = full.new_zeros(len(views), rows // batch, batch, channels, height, width)
    for v, slot in zip(views, out):
        v.extract(full, cell, out=slot[0])
        slot[1:] = slot[0]          # the same image's cond/uncond rows: a copy within the call's tensor
    return out.view(len(views) * rows, channels, height, width)


class PhaseHints:
    """The units of one phase: their phase-size hints, and swapping in the crops of each call."""

    def __init__(self, params: Sequence, latent_shape: tuple[int, int], cell: int = 8):
        self.params = list(params)
        self.cell = cell
        self.full = [phase_hint(p.hint_cond, latent_shape, cell) for p in self.params]

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.full)

    def report(self) -> list[str]:
        return [hints_report(len(self.params), self.full)] if self.params else []

    @contextlib.contextmanager
    def serving(self, views: Sequence[View], rows: int):
        """Inside the block every unit's hint is the crops for `views`; the phase-1 hints come back after."""
        saved = [(p.hint_cond, getattr(p, "hr_hint_cond", None)) for p in self.params]
        try:
            for p, full in zip(self.params, self.full):
                p.hint_cond = view_hints(full, views, rows, self.cell)
                if hasattr(p, "hr_hint_cond"):
                    p.hr_hint_cond = None      # else ControlNet re-picks between two hints by size
            yield
        finally:
            for p, (hint, hr) in zip(self.params, saved):
                p.hint_cond = hint
                if hasattr(p, "hr_hint_cond"):
                    p.hr_hint_cond = hr


def hints_report(units: int, tensors) -> str:
    """The phase report's line for per-view hints (both hosts): units, and the phase-size tensors they hold."""
    tensors = [t for t in tensors if t is not None]
    size = sum(t.numel() * t.element_size() for t in tensors) / 2 ** 20
    return f"{units} ControlNet unit(s) per view, phase hints {size:.2f} MiB on {tensors[0].device}"
