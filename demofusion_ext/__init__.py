"""DemoFusion engine: pure torch, host-agnostic.

The engine is this folder's modules; `standalone/` runs it without a WebUI; `hosts/` adapts it to the
WebUIs and is the only place that imports their `modules`.
"""
from .blur import blur_sigma, cosine_factor, gaussian_blur
from .fusion import fused_prediction
from .model_calls import CallCounter
from .model_calls import CallCounter as EvalCounter  # the old name
from .phase_runner import Evaluation, PhaseRunner
from .phases import Phase, dilation_for, model_evaluations, plan_phases
from .seeds import jitter_rng
from .settings import LIMITS, DemoFusionSettings
from .skip_residual import anchor, noised, noised_vp, skip_residual
from .standalone.driver import phase_sigmas, run_demofusion, seeded_noise
from .standalone.noise_schedule import DiscreteSchedule
from .tiled_vae import tiled_decode, tiled_encode
from .upscale import upscale_latent
from .view_batch import ViewBatch, is_out_of_memory
from .views import Layout, View, global_views, local_views, make_layout, window_indices

__all__ = [
    "DemoFusionSettings", "LIMITS", "Phase", "plan_phases", "dilation_for", "model_evaluations",
    "View", "Layout", "local_views", "global_views", "make_layout", "window_indices", "jitter_rng", "Evaluation",
    "gaussian_blur", "blur_sigma", "cosine_factor", "fused_prediction", "PhaseRunner", "ViewBatch",
    "is_out_of_memory", "skip_residual", "noised", "noised_vp", "anchor", "tiled_decode", "tiled_encode",
    "DiscreteSchedule", "run_demofusion", "seeded_noise", "upscale_latent", "phase_sigmas", "CallCounter",
    "EvalCounter",
]
