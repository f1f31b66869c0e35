"""stable-diffusion-webui-forge (Forge 2; Neo, reForge and Classic share the wrapper API) adapter.

Forge's model object has no `apply_model` to hook. Fusion goes through the UNet function wrapper of
a cloned UNet patcher instead (`set_model_unet_function_wrapper`, measured in
../shared/forge-harness/README.md): it receives the unscaled sampler input, sigma per row, the
conditioning dict `c` and `cond_or_uncond` (uncond rows first), and returns x0. The phase loop, the
skip residual and decoding are shared with A1111 (hosts/webui.py).

Forge resets `sd_model.forge_objects` before every sampling and other scripts patch it in
`process_before_every_sampling`, so each phase >= 2 resets it, lets those scripts patch again, then
wraps a clone; the phase-1 objects are put back afterwards.

ControlNet Integrated adds its units to that clone as a linked list of ControlNet objects, which Forge's
sampler asks for a full-size control before calling the wrapper. In a phase >= 2 that request gets None
(nothing is computed), and the wrapper asks the units itself, once per view batch, with each view's part
of the phase-size hint (controlnet_hints.py) and the row marks of the view batch (control modes weight by them).
"""
from __future__ import annotations

import contextlib

import torch

from modules import sd_models
from modules.sd_samplers_common import InterruptedException

from . import webui
from ..controlnet_hints import hints_report, phase_hint, view_hints
from ..counting import EvalCounter
from .webui import DemoFusionError, RunRecord, refuse  # noqa: F401  (the script's entry points)
from ..phase_runner import PhaseRunner
from ..settings import DemoFusionSettings
from ..skip_residual import anchor
from ..view_conditioning import CropColumns, split_cond
from .view_prompts import chunk_roles, window_indices


def check_request(p, settings: DemoFusionSettings) -> None:
    webui.check_request(p, settings)
    model = p.sd_model
    if not (model.is_sd1 or model.is_sd2 or model.is_sdxl):
        raise DemoFusionError(f"DemoFusion supports SD1.x, SD2.x and SDXL checkpoints, not "
                              f"{type(model).__name__}: load one of those, or turn DemoFusion off.")


def install(p, settings: DemoFusionSettings, record: RunRecord) -> None:
    webui.install(p, settings, record, run_phase, guard=unet_guard)


@contextlib.contextmanager
def unet_guard(p):
    """Refuse, before each sampling starts, a UNet that another extension made impossible to cut into views."""
    runner = p.scripts
    if runner is None:
        yield
        return
    original = runner.process_before_every_sampling

    def checked(*args, **kwargs):
        original(*args, **kwargs)
        unet = p.sd_model.forge_objects.unet
        served_controlnets(unet)
        if "model_function_wrapper" in unet.model_options:
            raise DemoFusionError("DemoFusion cannot run with another extension that replaces the UNet call "
                                  "(e.g. MultiDiffusion Integrated): turn that extension off.")
    with webui.restored(runner, "process_before_every_sampling", checked):
        yield


def crop_columns(model) -> CropColumns | None:
    """SDXL: Forge embeds the size numbers of `y` with `sd_model.embedder` (a 256-wide timestep embedding)."""
    embedder = getattr(model, "embedder", None) if model.is_sdxl else None
    return CropColumns(embedder, embedder.dim) if embedder is not None else None


def run_phase(p, phase, window, settings, start, z1, c, uc, view_batch=None,
              strength: float = 1.0, view_prompts=None) -> tuple[torch.Tensor, int]:
    ps = webui.new_phase(p, phase, window, settings, start, view_batch, strength)
    model = p.sd_model
    phase_one = model.forge_objects
    model.forge_objects = model.forge_objects_after_applying_lora.shallow_copy()
    try:
        sd_models.apply_token_merging(model, p.get_token_merging_ratio())
        if p.scripts is not None:
            p.scripts.process_before_every_sampling(p, x=ps.z, noise=ps.noise, c=c, uc=uc)
        unet = model.forge_objects.unet.clone()
        crop = crop_columns(model)
        # Forge 2 / Neo name the sigma <-> timestep object `predictor`, reForge / Classic `model_sampling`
        predictor = getattr(unet.model, "predictor", None) or unet.model.model_sampling
        control = PhaseControl(served_controlnets(unet), phase.shape)
        fusion = FusionWrapper(ps.runner, predictor, crop, control, view_prompts)
        unet.set_model_unet_function_wrapper(fusion)
        estimate = unet.model_options.get("memory_peak_estimation_modifier", unet.memory_required)
        # the UNet sees one view batch at a time, never the whole phase: let Forge plan memory for that
        views = settings.view_batch_size
        unet.set_memory_peak_estimation_modifier(
            lambda shape: estimate([shape[0] * views, shape[1], window[0], window[1]]))
        model.forge_objects.unet = unet
        with control.per_view():
            out = webui.sample_phase(p, ps, settings, c, uc)
    finally:
        model.forge_objects = phase_one
    print(webui.phase_report(phase, ps.runner, fusion.counter, (["SDXL crop coordinates per view"] if crop else [])
                             + control.report() + ([view_prompts.describe()] if view_prompts is not None else [])))
    return anchor(out, z1), fusion.counter.calls


class FusionWrapper:
    """Forge's UNet function wrapper: one call = one fused evaluation, or a part of one (Forge splits rows by free
    memory, and calls cond and uncond apart when their prompts differ in length): the CFG denoiser's
    evaluation() block (hosts/webui.py) keeps one layout for all parts."""

    def __init__(self, runner: PhaseRunner, predictor, crop: CropColumns | None, control: "PhaseControl",
                 view_prompts=None):
        self.runner, self.predictor, self.crop, self.control = runner, predictor, crop, control
        self.view_prompts = view_prompts
        self.counter = EvalCounter(None)

    def __call__(self, model_function, params: dict) -> torch.Tensor:
        x, sigma, c = params["input"], params["timestep"], params["c"]
        chunks = list(params["cond_or_uncond"])
        rows = x.shape[0]
        per_chunk = sigma[:rows // len(chunks)]
        t = float(self.predictor.timestep(sigma[:1])[0])
        self.counter.fn = model_function
        spatial = {k: v for k, v in c.items() if k not in ("transformer_options", "control", "control_model")}
        options = c.get("transformer_options", {})

        def predict(xb, **kw):
            if webui.interrupted():
                raise InterruptedException
            sb, cc = sigma.repeat(xb.shape[0] // rows), kw["c"]
            if self.control.nets:
                cc = dict(cc, control=self.control.get(kw["views"], xb, sb, cc, rows),
                          control_model=self.control.nets[-1])
            return self.counter(xb, sb, **cc)

        def condition(views):
            n = len(views)
            cc = split_cond(spatial, views, rows, x.shape[-2:], self.crop, vector_key="y")
            cc["transformer_options"] = chunk_options(options, chunks * n, per_chunk)
            if self.view_prompts is not None:
                self.view_prompts.apply(cc["c_crossattn"], cc.get("y"), window_indices(self.runner, views), rows,
                                        chunk_roles(chunks, rows),
                                        keep_columns=2 * self.crop.width if self.crop is not None else None)
            return {"c": cc, "views": views}
        # the wrapper returns x0 = x - sigma eps, which moves one for one with the input at a fixed eps
        return self.runner.predict(predict, x, t, condition, input_slope=1.0)


def chunk_options(options: dict, chunks: list, sigmas: torch.Tensor) -> dict:
    """transformer_options for rows made of `chunks` (0 = cond, 1 = uncond) of len(sigmas) rows each, with the
    row marks and indices patches read (as Forge's sampler writes them)."""
    b = int(sigmas.shape[0])
    to = dict(options)
    to["cond_or_uncond"] = list(chunks)
    to["cond_mark"] = torch.tensor([float(k) for k in chunks for _ in range(b)]).to(sigmas)
    to["cond_indices"] = [i * b + j for i, k in enumerate(chunks) if k == 0 for j in range(b)]
    to["uncond_indices"] = [i * b + j for i, k in enumerate(chunks) if k != 0 for j in range(b)]
    return to


def served_controlnets(unet) -> list:
    """The UNet patcher's ControlNet objects in unit order, refusing any whose control cannot be cut into views."""
    from backend.patcher.controlnet import ControlNet
    nets = list(reversed(unet.list_controlnets()))
    for i, net in enumerate(nets):
        hint = getattr(net, "cond_hint_original", None)
        reason = None
        if not isinstance(net, ControlNet):
            reason = f"its model type {type(net).__name__} is not a ControlNet with an image hint"
        elif not isinstance(hint, torch.Tensor) or hint.ndim != 4:
            reason = "it has no image hint"
        if reason:
            raise DemoFusionError(f"DemoFusion cannot serve ControlNet unit {i} per view: {reason}. Disable that "
                                  f"unit, or use a ControlNet model with an image hint (canny, depth, lineart, tile, ...).")
    return nets


class PhaseControl:
    """ControlNet Integrated's units in one phase: their phase-size hints, and their control for one view batch."""

    def __init__(self, nets: list, latent_shape: tuple[int, int]):
        self.nets = nets          # unit order: the last is the head of Forge's list, whose get_control sums them all
        self.shape, self.full, self.masks = latent_shape, [], []
        self.own_masks = [getattr(n, "advanced_mask_weighting", None) for n in nets]

    def get(self, views, x: torch.Tensor, sigma: torch.Tensor, cc: dict, rows: int) -> dict | None:
        """The units' summed control for stacked `views` (x, sigma and cc view-major, `rows` rows per view)."""
        if not self.full:         # made on first use: a Control-LoRA has its model (and dtype) only once sampling began
            self.full = [phase_hint(n.cond_hint_original.to(n.device, control_dtype(n)), self.shape) for n in self.nets]
            self.masks = [None if m is None else phase_hint(m.to(n.device, torch.float32), self.shape)
                          for n, m in zip(self.nets, self.own_masks)]
        for net, full, mask in zip(self.nets, self.full, self.masks):
            net.cond_hint = view_hints(full, views, rows)       # one row per row of x: Forge uses it as it is
            if mask is not None:                                # a mask weights the control where the view lies
                net.advanced_mask_weighting = view_hints(mask, views, rows)
            net.transformer_options = cc["transformer_options"]  # control modes weight by its cond_mark
        chunks = len(cc["transformer_options"]["cond_or_uncond"])
        return self.get_control(x, sigma, dict(cc), chunks)

    @contextlib.contextmanager
    def per_view(self):
        """Forge's own full-size request for control gets None; `get_control` keeps the head's real method."""
        if not self.nets:
            yield
            return
        head = self.nets[-1]
        self.get_control = head.get_control
        head.get_control = lambda *args, **kwargs: None
        try:
            yield
        finally:
            del head.get_control
            for net, mask in zip(self.nets, self.own_masks):
                net.cond_hint, net.advanced_mask_weighting = None, mask

    def report(self) -> list[str]:
        if not self.full:
            return []
        return [hints_report(len(self.nets), self.full + self.masks)]


def control_dtype(net) -> torch.dtype:
    return net.manual_cast_dtype or net.control_model.dtype
