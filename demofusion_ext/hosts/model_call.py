"""The fused model call: the part of each host's model-call hook that is the same on every host.

A host's hook turns its own call into `FusedCall.predict(x, t, call, split, roles, input_slope)`: `call(xb, views,
cond)` runs the model on stacked views with their conditioning, `split(views)` gives that conditioning and its
cross-attention and vector tensors, and `roles` says which image each cond row belongs to (for per-view prompts).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from modules.sd_samplers_common import InterruptedException

from ..model_calls import CallCounter
from ..phase_runner import PhaseRunner
from ..view_conditioning import CropColumns
from ..views import window_indices
from .sampler_hooks import interrupted


@dataclass
class FusedCall:
    runner: PhaseRunner
    counter: CallCounter          # the host points its `fn` at the model function it calls
    control: object               # the host's per-view ControlNet (Host.phase_control)
    crop: CropColumns | None
    view_prompts: object = None   # PhaseViewPrompts of this phase, or None

    def predict(self, x: torch.Tensor, t: float, call: Callable, split: Callable, roles: list | None,
                input_slope: float | None) -> torch.Tensor:
        rows = x.shape[0]

        def predict(xb, **kw):
            if interrupted():
                raise InterruptedException
            return call(xb, kw["views"], kw["cond"])

        def condition(views):
            cond, cross, vector = split(views)
            if self.view_prompts is not None:
                self.view_prompts.apply(cross, vector, window_indices(views), rows, roles,
                                        keep_columns=2 * self.crop.width if self.crop is not None else None)
            return {"cond": cond, "views": views}
        return self.runner.predict(predict, x, t, condition, input_slope=input_slope)

    def report(self) -> list[str]:
        return ((["SDXL crop coordinates per view"] if self.crop else []) + self.control.report()
                + ([self.view_prompts.describe()] if self.view_prompts is not None else []))
