"""One phase k >= 2 as a sampler sees it: the state mixing before a step, and the fused model.

Hosts (and the standalone driver) call `mix` on the sampler's own state before the first model
evaluation of each step, and route every model evaluation of the phase through `predict`. One sampler
evaluation may reach the model in several calls (A1111 calls cond and uncond separately when their prompts
differ in length or "Batch cond/uncond" is off; Forge splits rows by free memory): hosts wrap each evaluation
in `evaluation()`, which draws its views, so all its calls share them and the next evaluation draws new ones.
A `predict` outside such a block is an evaluation of its own.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from .blur import blur_sigma, cosine_factor
from .fusion import Condition, Predict, fused_prediction
from .global_cutoff import cut
from .phases import Phase
from .seeds import interaction_generator, jitter_rng
from .settings import DemoFusionSettings
from .skip_residual import noised, noised_vp, skip_residual
from .view_batch import ViewBatch
from .views import Layout, View, make_layout, size_multiple


@dataclass(frozen=True)
class Evaluation:
    """One fused evaluation of the sampler's denoiser."""
    index: int          # its number in the phase: keys its jitter and window-interaction draws
    layout: Layout


class PhaseRunner:
    def __init__(self, phase: Phase, window: tuple[int, int], settings: DemoFusionSettings,
                 z: torch.Tensor, noise: torch.Tensor, seed: int = 0, num_timesteps: int = 1000,
                 view_batch: ViewBatch | None = None):
        self.phase, self.window, self.settings = phase, window, settings
        self.z, self.noise, self.seed, self.T = z, noise, seed, num_timesteps
        self.view_batch = view_batch or ViewBatch(settings.view_batch_size)
        self.evaluations = 0                        # fused evaluations drawn so far
        self.current: Evaluation | None = None      # the open evaluation() block's

    @contextlib.contextmanager
    def evaluation(self):
        """One evaluation of the sampler's denoiser: its views are drawn here and every `predict` inside uses them.
        Yields the Evaluation (None in a plain phase, which has no views)."""
        outer, self.current = self.current, None if self.is_plain else self._draw()
        try:
            yield self.current
        finally:
            self.current = outer

    def _draw(self) -> Evaluation:
        index, s = self.evaluations, self.settings
        self.evaluations += 1
        rng = jitter_rng(self.seed, self.phase.index, index) if s.random_jitter else None
        return Evaluation(index, make_layout(self.phase.height, self.phase.width, self.window, s.stride,
                                             self.phase.dilation, rng, multiple=size_multiple(self.window)))

    def weights(self, t: float) -> tuple[float, float, float]:
        """(c1, c2, blur sigma) at model timestep t; c2 after the global-view cut-off."""
        s = self.settings
        cf = cosine_factor(t, self.T)
        return cf ** s.cosine_scale_1, cut(cf ** s.cosine_scale_2, s.global_cutoff), blur_sigma(s.sigma, cf,
                                                                                                s.cosine_scale_3)

    def mix(self, x: torch.Tensor, t: float, sigma=None, alpha_bar=None, inplace: bool = True) -> torch.Tensor:
        """Skip residual on the sampler state x at timestep t.

        k-diffusion state: pass `sigma`; timestep (VP) state: pass `alpha_bar` instead.
        """
        c1 = self.weights(t)[0]
        z, n = self._rows(x)
        target = noised(z, n, sigma) if alpha_bar is None else noised_vp(z, n, alpha_bar)
        return skip_residual(x, target, c1, inplace=inplace)

    def _rows(self, x: torch.Tensor):
        """z and noise for a state of x's rows: a host may batch several rows (e.g. AND-prompts) per image."""
        z, n = self.z.to(x.device, x.dtype), self.noise.to(x.device, x.dtype)
        if x.shape[0] != z.shape[0]:
            raise ValueError(f"sampler state has {x.shape[0]} rows, the phase {z.shape[0]} images")
        return z, n

    @property
    def is_plain(self) -> bool:
        return self.phase.shape == tuple(self.window)

    def predict(self, predict: Predict, x_in: torch.Tensor, t: float, condition: Condition | None = None,
                input_slope=None) -> torch.Tensor:
        """The fused raw prediction for model input x_in at timestep t, over the current evaluation's views;
        `input_slope` as in `fused_prediction` for predictions other than eps."""
        if self.is_plain:      # a phase of the window's size is one plain model call
            kwargs = condition([View("local", 0, 0, *self.phase.shape)]) if condition else {}
            return predict(x_in, **kwargs)
        if self.current is None:
            with self.evaluation():
                return self.predict(predict, x_in, t, condition, input_slope)
        _, c2, bs = self.weights(t)
        # a generator seeded afresh for every call: the calls of one evaluation draw the same permutations
        interaction = (interaction_generator(self.seed, self.phase.index, self.current.index)
                       if self.settings.window_interaction else None)
        return fused_prediction(predict, x_in, self.current.layout, c2=c2, blur_sigma=bs,
                                view_batch_size=self.view_batch, condition=condition, input_slope=input_slope,
                                interaction=interaction)
