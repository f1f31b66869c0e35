"""Which model calls of a k-diffusion sampler start a step: the skip residual mixes the state there, and only there.

A k-diffusion sampler calls its `callback` once per step, right after the step's first model call; a second-order
sampler (Heun, DPM2, DPM++ 2S, DPM++ SDE) then makes one more call for the same step. The callbacks alone cannot
tell that extra call from the next step's first (Heun makes both at sigmas[i + 1]), so the caller says how many
calls a step makes. A sampler that does not keep to that count is an error, never a silently misplaced mix.
"""
from __future__ import annotations


class StepStarts:
    def __init__(self, calls_per_step: int = 1):
        if calls_per_step < 1:
            raise ValueError(f"calls_per_step must be at least 1, not {calls_per_step}")
        self.extra = calls_per_step - 1
        self.waiting = True         # the call after `skip` more starts a step (the run's first call does)
        self.skip = 0

    def model_call(self) -> bool:
        """Called before each model call: whether it is the first of a step."""
        if not self.waiting:
            raise RuntimeError(f"the sampler made more model calls per step than the {self.extra + 1} it was "
                               f"declared with (calls_per_step)")
        if self.skip:
            self.skip -= 1
            return False
        self.waiting = False
        return True

    def callback(self, *_):
        """The sampler's step callback (k-diffusion passes one dict)."""
        if self.waiting:
            raise RuntimeError(f"the sampler made fewer model calls per step than the {self.extra + 1} it was "
                               f"declared with (calls_per_step)")
        self.waiting, self.skip = True, self.extra
