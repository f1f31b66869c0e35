"""One phase k >= 2 as a sampler sees it: the state mixing before a step, and the fused model.

Hosts (and the driver in `driver.py`) call `mix` on the sampler's own state before the first model
evaluation of each step, and route every model evaluation of the phase through `predict`.
"""
from __future__ import annotations

import torch

from .blur import blur_sigma, cosine_factor
from .fusion import Condition, Predict, fused_prediction
from .phases import Phase
from .settings import DemoFusionSettings
from .skip_residual import noised, noised_vp, skip_residual
from .views import View, jitter_rng, make_layout, size_multiple


class PhaseRunner:
    def __init__(self, phase: Phase, window: tuple[int, int], settings: DemoFusionSettings,
                 z: torch.Tensor, noise: torch.Tensor, seed: int = 0, num_timesteps: int = 1000):
        self.phase, self.window, self.settings = phase, window, settings
        self.z, self.noise, self.seed, self.T = z, noise, seed, num_timesteps
        self.evaluations = 0          # fused evaluations so far: indexes the jitter stream
        self._last_part = None

    def weights(self, t: float) -> tuple[float, float, float]:
        """(c1, c2, blur sigma) at model timestep t."""
        s = self.settings
        cf = cosine_factor(t, self.T)
        return cf ** s.cosine_scale_1, cf ** s.cosine_scale_2, blur_sigma(s.sigma, cf, s.cosine_scale_3)

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
                input_slope=None, part_of=None) -> torch.Tensor:
        """The fused raw prediction for model input x_in at timestep t (one evaluation of the phase);
        `input_slope` as in `fused_prediction` for predictions other than eps.

        `part_of` names the evaluation (e.g. its sigma) for a host that may split one evaluation's rows over
        several calls (Forge does, by free memory): consecutive calls with the same name share one layout.
        """
        if self.is_plain:      # a phase of the window's size is one plain model call
            kwargs = condition([View("local", 0, 0, *self.phase.shape)]) if condition else {}
            return predict(x_in, **kwargs)
        _, c2, bs = self.weights(t)
        s = self.settings
        if part_of is None or part_of != self._last_part:
            self.evaluations += 1
        self._last_part = part_of
        rng = jitter_rng(self.seed, self.phase.index, self.evaluations - 1) if s.random_jitter else None
        layout = make_layout(self.phase.height, self.phase.width, self.window, s.stride, self.phase.dilation, rng,
                             multiple=size_multiple(self.window))
        return fused_prediction(predict, x_in, layout, c2=c2, blur_sigma=bs, view_batch_size=s.view_batch_size,
                                condition=condition, input_slope=input_slope)
