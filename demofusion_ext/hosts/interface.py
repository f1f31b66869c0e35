"""The host interface: the few things that differ between the WebUIs DemoFusion runs in.

Everything else (refusals, the phase loop, the sampler hooks, pictures, the fused model call) is shared and lives
in the other modules of this package. A new host is one small module with a `Host` subclass, registered in
`hosts/__init__.py:host_for`. docs/ARCHITECTURE.md, "Host interface", says where each hook sits and what it puts
back.
"""
from __future__ import annotations

import contextlib
from typing import ContextManager

from ..view_conditioning import CropColumns
from .model_call import FusedCall


class Host:
    """One WebUI host. Subclasses override what their WebUI does differently; each context manager puts back, in
    `finally`, exactly what it changed."""

    name = "WebUI"

    def check_model(self, p) -> None:
        """Raise DemoFusionError for a model family DemoFusion cannot run (before any work)."""

    def run_guard(self, p) -> ContextManager:
        """A context around the whole generation (all phases): refusals that need the request's extensions set
        up, and hooks that must span every phase."""
        return contextlib.nullcontext()

    def phase_patches(self, p, x, noise, c, uc) -> ContextManager:
        """A context in which other extensions have patched the model for one phase >= 2, as they do before every
        sampling (`process_before_every_sampling`)."""
        raise NotImplementedError

    def crop_columns(self, model) -> CropColumns | None:
        """SDXL: how this host embeds the crop coordinates of the vector condition (None: not SDXL)."""
        raise NotImplementedError

    def phase_control(self, p, phase):
        """ControlNet in one phase: an object with `report() -> list[str]`, given to `fused_model` in the FusedCall."""
        raise NotImplementedError

    def fused_model(self, p, fused: FusedCall, window: tuple[int, int]) -> ContextManager:
        """A context in which every model call of the phase goes through `fused.predict`: the host decides where
        to hook the call, how to call the model on stacked views, how to split its conditioning, and which rows
        are cond rows of which image."""
        raise NotImplementedError
