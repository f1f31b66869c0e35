"""AUTOMATIC1111 WebUI (v1.10) adapter: fusion on `sd_model.apply_model`, sd-webui-controlnet hints per view.

The phase loop, the skip residual and decoding are shared with Forge (hosts/webui.py). Here, an
instance attribute on `sd_model.apply_model` turns each raw prediction (eps or v, on the scaled
input) into the fused one; it is removed in `finally`.
"""
from __future__ import annotations

import contextlib

import torch

from modules import shared
from modules.sd_samplers_common import InterruptedException

from . import webui
from ..controlnet_hints import PhaseHints, unsupported_unit
from ..counting import EvalCounter
from .webui import DemoFusionError, RunRecord, refuse  # noqa: F401  (the script's entry points)
from ..phase_runner import PhaseRunner
from ..settings import DemoFusionSettings
from ..skip_residual import anchor
from ..view_conditioning import CropColumns, split_cond
from .view_prompts import RowTracker, window_indices


def check_request(p, settings: DemoFusionSettings) -> None:
    webui.check_request(p, settings)
    if getattr(shared.sd_model, "is_sd3", False):
        raise DemoFusionError("DemoFusion supports SD1.x, SD2.x and SDXL checkpoints, not SD3.")


def install(p, settings: DemoFusionSettings, record: RunRecord) -> None:
    webui.install(p, settings, record, run_phase, guard=controlnet_guard)


def controlnet_units(p) -> list:
    """sd-webui-controlnet's enabled units (their ControlParams), found without importing ControlNet."""
    for script in (p.scripts.alwayson_scripts if p.scripts is not None else []):
        if script.title() == "ControlNet":
            network = getattr(script, "latest_network", None)
            return list(network.control_params) if network is not None else []
    return []


@contextlib.contextmanager
def controlnet_guard(p):
    """Refuse, before phase 1, units whose control cannot be cut into views."""
    for i, param in enumerate(controlnet_units(p)):
        reason = unsupported_unit(param)
        if reason:
            raise DemoFusionError(f"DemoFusion cannot serve ControlNet unit {i} per view: {reason}. "
                                  f"Disable that unit, or use a ControlNet model with an image hint (canny, depth, "
                                  f"lineart, tile, ...) and a preprocessor that is not inpaint or reference.")
    yield


def crop_columns(model) -> CropColumns | None:
    """SDXL (sgm): the conditioner's crop-coordinate embedder."""
    for emb in getattr(getattr(model, "conditioner", None), "embedders", []):
        if getattr(emb, "input_key", None) == "crop_coords_top_left":
            return CropColumns(lambda t, emb=emb: emb(t.view(1, -1)), emb.outdim)
    return None


def run_phase(p, phase, window, settings, start, z1, c, uc, view_batch=None,
              strength: float = 1.0, view_prompts=None) -> tuple[torch.Tensor, int]:
    ps = webui.new_phase(p, phase, window, settings, start, view_batch, strength)
    if p.scripts is not None:
        p.scripts.process_before_every_sampling(p=p, x=ps.z, noise=ps.noise, c=c, uc=uc)
    counter = EvalCounter(p.sd_model.apply_model)
    units = controlnet_units(p)
    hints = PhaseHints(units, phase.shape) if units else None
    crop = crop_columns(p.sd_model)
    with fusion_hook(p, ps.runner, counter, hints, crop, view_prompts):
        out = webui.sample_phase(p, ps, settings, c, uc)
    print(webui.phase_report(phase, ps.runner, counter, (["SDXL crop coordinates per view"] if crop else [])
                             + ([hints.report()] if hints else [])
                             + ([view_prompts.describe()] if view_prompts is not None else [])))
    return anchor(out, z1), counter.calls


@contextlib.contextmanager
def fusion_hook(p, runner: PhaseRunner, apply_model, hints: "PhaseHints | None" = None,
                crop: CropColumns | None = None, view_prompts=None):
    """Every apply_model call of the phase becomes the fused prediction over the views of the current evaluation.
    `apply_model` is what was there before (the model's own, or another extension's instance hook)."""
    model = p.sd_model
    v_model = getattr(model, "parameterization", "eps") == "v"
    tracker = RowTracker(p, p.batch_size) if view_prompts is not None else None

    def fused_apply_model(x, t, cond=None, *args, **kwargs):
        rows = x.shape[0]
        tv = float(t.flatten()[0])
        roles = tracker.roles(rows) if tracker is not None else None

        def predict(xb, **kw):
            if webui.interrupted():
                raise InterruptedException
            n = xb.shape[0] // rows
            with hints.serving(kw["views"], rows) if hints else contextlib.nullcontext():
                return apply_model(xb, t.repeat(n), cond=kw["cond"], *args, **kwargs)

        def condition(views):
            cc = split_cond(cond, views, rows, x.shape[-2:], crop)
            if view_prompts is not None:
                cross = cc["c_crossattn"][0] if "c_crossattn" in cc else cc["crossattn"]
                view_prompts.apply(cross, cc.get("vector"), window_indices(runner, views), rows, roles,
                                   keep_columns=2 * crop.width if crop is not None else None)
            return {"cond": cc, "views": views}
        slope = None
        if v_model:      # v on the scaled input moves by -sigma per unit of input at a fixed eps
            a = float(model.alphas_cumprod[int(round(tv))])      # float64: 1 - a loses digits in float16
            slope = -((1 - a) / a) ** 0.5
        return runner.predict(predict, x, tv, condition, input_slope=slope)

    with webui.restored(model, "apply_model", fused_apply_model):
        yield
