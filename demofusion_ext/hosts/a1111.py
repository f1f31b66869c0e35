"""AUTOMATIC1111 WebUI (v1.10): the fused prediction on `sd_model.apply_model`, sd-webui-controlnet hints per view.

An instance attribute on `sd_model.apply_model` turns each raw prediction (eps or v, on the scaled input) into the
fused one for the phase; `restored` removes it (or puts back another extension's own) in `finally`.
"""
from __future__ import annotations

import contextlib

from modules import shared

from ..controlnet_hints import PhaseHints, unsupported_unit
from ..view_conditioning import split_cond
from .crop_embedders import sgm_crop_columns
from .interface import Host
from .model_call import FusedCall
from .refusals import DemoFusionError
from .sampler_hooks import restored
from .view_prompts import RowTracker


def controlnet_units(p) -> list:
    """sd-webui-controlnet's enabled units (their ControlParams), found without importing ControlNet."""
    for script in (p.scripts.alwayson_scripts if p.scripts is not None else []):
        if script.title() == "ControlNet":
            network = getattr(script, "latest_network", None)
            return list(network.control_params) if network is not None else []
    return []


class A1111(Host):
    name = "A1111 WebUI"

    def check_model(self, p) -> None:
        if getattr(shared.sd_model, "is_sd3", False):
            raise DemoFusionError("DemoFusion supports SD1.x, SD2.x and SDXL checkpoints, not SD3.")

    @contextlib.contextmanager
    def run_guard(self, p):
        """Refuse, before phase 1, units whose control cannot be cut into views (ControlNet has set them up by then)."""
        for i, param in enumerate(controlnet_units(p)):
            reason = unsupported_unit(param)
            if reason:
                raise DemoFusionError(f"DemoFusion cannot serve ControlNet unit {i} per view: {reason}. "
                                      f"Disable that unit, or use a ControlNet model with an image hint (canny, depth, "
                                      f"lineart, tile, ...) and a preprocessor that is not inpaint or reference.")
        yield

    @contextlib.contextmanager
    def phase_patches(self, p, x, noise, c, uc):
        if p.scripts is not None:
            p.scripts.process_before_every_sampling(p=p, x=x, noise=noise, c=c, uc=uc)
        yield

    def crop_columns(self, model):
        return sgm_crop_columns(model)

    def phase_control(self, p, phase) -> PhaseHints:
        return PhaseHints(controlnet_units(p), phase.shape)

    def fused_model(self, p, fused: FusedCall, window):
        """Every apply_model call of the phase becomes the fused prediction over the views of the current
        evaluation; the model function called is what was there before (the model's own, or another extension's
        instance hook)."""
        model = p.sd_model
        fused.counter.fn = model.apply_model
        hints, crop = fused.control, fused.crop
        v_model = getattr(model, "parameterization", "eps") == "v"
        tracker = RowTracker(p, p.batch_size) if fused.view_prompts is not None else None

        def fused_apply_model(x, t, cond=None, *args, **kwargs):
            rows = x.shape[0]
            tv = float(t.flatten()[0])

            def call(xb, views, cc):
                with hints.serving(views, rows):
                    return fused.counter(xb, t.repeat(xb.shape[0] // rows), *args, cond=cc, **kwargs)

            def split(views):
                cc = split_cond(cond, views, rows, x.shape[-2:], crop)
                return cc, cc["c_crossattn"][0] if "c_crossattn" in cc else cc["crossattn"], cc.get("vector")
            slope = None
            if v_model:      # v on the scaled input moves by -sigma per unit of input at a fixed eps
                a = float(model.alphas_cumprod[int(round(tv))])      # float64: 1 - a loses digits in float16
                slope = -((1 - a) / a) ** 0.5
            roles = tracker.roles(rows) if tracker is not None else None
            return fused.predict(x, tv, call, split, roles, slope)

        return restored(model, "apply_model", fused_apply_model)
