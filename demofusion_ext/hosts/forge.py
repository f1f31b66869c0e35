"""stable-diffusion-webui-forge (Forge 2) adapter, and the base of the other Forge hosts (forge_classic.py,
forge_neo.py), which share its UNet function wrapper and override only the names their backends changed.

Forge's model object has no `apply_model` to hook. Fusion goes through the UNet function wrapper of
a cloned UNet patcher instead (`set_model_unet_function_wrapper`, measured in
docs/HOSTS.md): it receives the unscaled sampler input, sigma per row, the
conditioning dict `c` and `cond_or_uncond` (uncond rows first), and returns x0. The phase loop, the
skip residual and decoding are shared with every host (phase_loop.py, sampler_hooks.py).

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

from ..controlnet_hints import hints_report, phase_hint, view_hints
from ..view_batch import ViewBatch
from ..view_conditioning import CropColumns, split_cond
from .crop_embedders import forge_crop_columns
from .interface import Host
from .model_call import FusedCall
from .refusals import DemoFusionError
from .sampler_hooks import restored
from .view_prompts import chunk_roles


class Forge(Host):
    name = "Forge"

    def check_model(self, p) -> None:
        model = p.sd_model
        if not (model.is_sd1 or model.is_sd2 or model.is_sdxl):
            raise DemoFusionError(f"DemoFusion supports SD1.x, SD2.x and SDXL checkpoints, not "
                                  f"{type(model).__name__}: load one of those, or turn DemoFusion off.")

    @contextlib.contextmanager
    def run_guard(self, p):
        """Refuse, before each sampling starts, a UNet that another extension made impossible to cut into views."""
        runner = p.scripts
        if runner is None:
            yield
            return
        original = runner.process_before_every_sampling

        def checked(*args, **kwargs):
            original(*args, **kwargs)
            unet = p.sd_model.forge_objects.unet
            served_controlnets(unet, self.controlnet_class())
            if "model_function_wrapper" in unet.model_options:
                raise DemoFusionError("DemoFusion cannot run with another extension that replaces the UNet call "
                                      "(e.g. MultiDiffusion Integrated): turn that extension off.")
        with restored(runner, "process_before_every_sampling", checked):
            yield

    @contextlib.contextmanager
    def phase_patches(self, p, x, noise, c, uc):
        """Forge resets the model's patchers before every sampling and other scripts patch them again: the phase
        gets fresh ones, patched as for any sampling, and phase 1's are put back after it."""
        model = p.sd_model
        phase_one = model.forge_objects
        model.forge_objects = model.forge_objects_after_applying_lora.shallow_copy()
        try:
            sd_models.apply_token_merging(model, p.get_token_merging_ratio())
            if p.scripts is not None:
                p.scripts.process_before_every_sampling(p, x=x, noise=noise, c=c, uc=uc)
            yield
        finally:
            model.forge_objects = phase_one

    def crop_columns(self, model) -> CropColumns | None:
        return forge_crop_columns(model)

    def phase_control(self, p, phase) -> "PhaseControl":
        return PhaseControl(served_controlnets(p.sd_model.forge_objects.unet, self.controlnet_class()), phase.shape)

    # What the Forge hosts name differently (docs/HOSTS.md, "Forge hosts compared"): overridden per host.
    def controlnet_class(self) -> type:
        """The class of ControlNet Integrated's image-hint ControlNets."""
        from backend.patcher.controlnet import ControlNet
        return ControlNet

    def sigma_timestep(self, unet):
        """The object that maps sigma to the UNet's timestep (`.timestep(sigma)`)."""
        return unet.model.predictor

    def plan_memory(self, unet, modifier) -> None:
        """Make the sampler plan memory with `modifier(estimate)`, `estimate` being its own shape -> bytes."""
        estimate = unet.model_options.get("memory_peak_estimation_modifier", unet.memory_required)
        unet.set_memory_peak_estimation_modifier(modifier(estimate))

    @contextlib.contextmanager
    def fused_model(self, p, fused: FusedCall, window):
        """A clone of the phase's UNet patcher, wrapped so that each UNet call is the fused prediction, with memory
        planned for one view batch, and ControlNet asked per view batch."""
        model = p.sd_model
        unet = model.forge_objects.unet.clone()
        unet.set_model_unet_function_wrapper(FusionWrapper(fused, self.sigma_timestep(unet)))
        self.plan_memory(unet, lambda estimate: view_batch_memory(estimate, fused.runner.view_batch, window))
        model.forge_objects.unet = unet
        with fused.control.per_view():
            yield


def view_batch_memory(estimate, view_batch: ViewBatch, window: tuple[int, int]):
    """The UNet sees one view batch at a time, never the whole phase: Forge plans memory for the run's current view
    batch (read at each call: it shrinks after an out-of-memory error)."""
    return lambda shape: estimate([shape[0] * view_batch.size, shape[1], window[0], window[1]])


class FusionWrapper:
    """Forge's UNet function wrapper: one call = one fused evaluation, or a part of one (Forge splits rows by free
    memory, and calls cond and uncond apart when their prompts differ in length): the CFG denoiser's
    evaluation() block (sampler_hooks.py) keeps one layout for all parts. It receives the unscaled sampler input,
    sigma per row, the conditioning dict `c` and `cond_or_uncond` (uncond rows first), and returns x0."""

    def __init__(self, fused: FusedCall, predictor):
        self.fused, self.predictor = fused, predictor

    def __call__(self, model_function, params: dict) -> torch.Tensor:
        fused = self.fused
        x, sigma, c = params["input"], params["timestep"], params["c"]
        chunks = list(params["cond_or_uncond"])
        rows = x.shape[0]
        per_chunk = sigma[:rows // len(chunks)]
        t = float(self.predictor.timestep(sigma[:1])[0])
        fused.counter.fn = model_function
        spatial = {k: v for k, v in c.items() if k not in ("transformer_options", "control", "control_model")}
        options = c.get("transformer_options", {})
        control = fused.control

        def call(xb, views, cc):
            sb = sigma.repeat(xb.shape[0] // rows)
            if control.nets:
                cc = dict(cc, control=control.get(views, xb, sb, cc, rows), control_model=control.nets[-1])
            return fused.counter(xb, sb, **cc)

        def split(views):
            cc = split_cond(spatial, views, rows, x.shape[-2:], fused.crop, vector_key="y")
            cc["transformer_options"] = chunk_options(options, chunks * len(views), per_chunk)
            return cc, cc["c_crossattn"], cc.get("y")
        # the wrapper returns x0 = x - sigma eps, which moves one for one with the input at a fixed eps
        return fused.predict(x, t, call, split, chunk_roles(chunks, rows) if fused.view_prompts is not None else None,
                             input_slope=1.0)


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


def served_controlnets(unet, ControlNet: type) -> list:
    """The UNet patcher's ControlNet objects in unit order, refusing any whose control cannot be cut into views."""
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
        try:
            with restored(head, "get_control", lambda *args, **kwargs: None):
                yield
        finally:
            for net, mask in zip(self.nets, self.own_masks):
                net.cond_hint, net.advanced_mask_weighting = None, mask

    def report(self) -> list[str]:
        return [hints_report(len(self.nets), self.full + self.masks)] if self.full else []


def control_dtype(net) -> torch.dtype:
    return net.manual_cast_dtype or net.control_model.dtype
