"""DemoFusion engine: pure torch, host-agnostic. Hosts adapt it in host_a1111.py / host_forge.py."""
from .blur import blur_sigma, cosine_factor, gaussian_blur
from .counting import EvalCounter
from .driver import run_demofusion, seeded_noise, upscale_latent, phase_sigmas
from .fusion import fused_prediction
from .noise_schedule import DiscreteSchedule
from .phase_runner import PhaseRunner
from .phases import Phase, dilation_for, model_evaluations, plan_phases
from .settings import LIMITS, DemoFusionSettings
from .skip_residual import anchor, noised, noised_vp, skip_residual
from .tiled_vae import tiled_decode, tiled_encode
from .views import Layout, View, global_views, jitter_rng, local_views, make_layout

__all__ = [
    "DemoFusionSettings", "LIMITS", "Phase", "plan_phases", "dilation_for", "model_evaluations",
    "View", "Layout", "local_views", "global_views", "make_layout", "jitter_rng",
    "gaussian_blur", "blur_sigma", "cosine_factor", "fused_prediction", "PhaseRunner",
    "skip_residual", "noised", "noised_vp", "anchor", "tiled_decode", "tiled_encode",
    "DiscreteSchedule", "run_demofusion", "seeded_noise", "upscale_latent", "phase_sigmas", "EvalCounter",
]
