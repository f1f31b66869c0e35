"""The discrete diffusion schedule in k-diffusion terms: sigma <-> timestep, and sampling sigmas."""
from __future__ import annotations

import math

import torch


class DiscreteSchedule:
    """sigma_t = sqrt((1 - a_t) / a_t) for t = 0..T-1; continuous t by interpolating log sigma."""

    def __init__(self, alphas_cumprod: torch.Tensor):
        self.alphas_cumprod = alphas_cumprod.to("cpu", torch.float64)
        self.sigmas = ((1 - self.alphas_cumprod) / self.alphas_cumprod).sqrt()
        self.log_sigmas = self.sigmas.log()

    @classmethod
    def stable_diffusion(cls, steps: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012):
        betas = torch.linspace(beta_start ** 0.5, beta_end ** 0.5, steps, dtype=torch.float64, device="cpu") ** 2
        return cls(torch.cumprod(1 - betas, 0))

    @property
    def num_timesteps(self) -> int:
        return len(self.sigmas)

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[-1])

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[0])

    def sigma_to_t(self, sigma: float) -> float:
        log_sigma = math.log(max(float(sigma), 1e-12))
        ls = self.log_sigmas
        idx = int(torch.searchsorted(ls, torch.tensor(log_sigma, dtype=ls.dtype, device="cpu")).clamp(1, len(ls) - 1))
        lo, hi = float(ls[idx - 1]), float(ls[idx])
        w = min(max((lo - log_sigma) / (lo - hi), 0.0), 1.0)
        return (1 - w) * (idx - 1) + w * idx

    def t_to_sigma(self, t: float) -> float:
        t = min(max(float(t), 0.0), self.num_timesteps - 1.0)
        lo = int(math.floor(t))
        hi = min(lo + 1, self.num_timesteps - 1)
        w = t - lo
        return math.exp((1 - w) * float(self.log_sigmas[lo]) + w * float(self.log_sigmas[hi]))

    def get_sigmas(self, steps: int, kind: str = "uniform") -> torch.Tensor:
        """`steps` sampling sigmas from sigma_max down, with a final 0 (WebUI 'Automatic' or 'Karras'), on the CPU in
        float64: samplers use them as scalars next to a latent of any device and dtype."""
        if kind == "uniform":
            ts = torch.linspace(self.num_timesteps - 1, 0, steps, dtype=torch.float64, device="cpu")
            sig = [self.t_to_sigma(float(t)) for t in ts]
        elif kind == "karras":
            rho, lo, hi = 7.0, self.sigma_min ** (1 / 7.0), self.sigma_max ** (1 / 7.0)
            ramp = torch.linspace(0, 1, steps, dtype=torch.float64, device="cpu")
            sig = ((hi + ramp * (lo - hi)) ** rho).tolist()
        else:
            raise ValueError(f"unknown schedule kind {kind!r}; use 'uniform' or 'karras'")
        return torch.tensor(sig + [0.0], dtype=torch.float64, device="cpu")
