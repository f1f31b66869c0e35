"""stable-diffusion-webui-forge (Forge 2; Neo, reForge and Classic share the wrapper API) adapter.

Forge's model object has no `apply_model` to hook. Fusion goes through the UNet function wrapper of
a cloned UNet patcher instead (`set_model_unet_function_wrapper`, measured in
../shared/forge-harness/README.md): it receives the unscaled sampler input, sigma per row, the
conditioning dict `c` and `cond_or_uncond` (uncond rows first), and returns x0. The phase loop, the
skip residual and decoding are shared with A1111 (hosts/webui.py).

Forge resets `sd_model.forge_objects` before every sampling and other scripts patch it in
`process_before_every_sampling`, so each phase >= 2 resets it, lets those scripts patch again, then
wraps a clone; the phase-1 objects are put back afterwards.
"""
from __future__ import annotations

import contextlib

import torch

from modules import sd_models
from modules.sd_samplers_common import InterruptedException

from . import webui
from ..counting import EvalCounter
from .webui import DemoFusionError, RunRecord, refuse  # noqa: F401  (the script's entry points)
from ..phase_runner import PhaseRunner
from ..settings import DemoFusionSettings
from ..skip_residual import anchor
from ..view_conditioning import CropColumns, split_cond

CONTROLNET_REFUSAL = ("DemoFusion cannot serve Forge's built-in ControlNet (ControlNet Integrated) per view: "
                      "disable the ControlNet units, or turn DemoFusion off for this generation.")


def check_request(p, settings: DemoFusionSettings) -> None:
    webui.check_request(p, settings)
    model = p.sd_model
    if not (model.is_sd1 or model.is_sd2 or model.is_sdxl):
        raise DemoFusionError(f"DemoFusion supports SD1.x, SD2.x and SDXL checkpoints, not "
                              f"{type(model).__name__}: load one of those, or turn DemoFusion off.")
    if controlnet_units(p):
        raise DemoFusionError(CONTROLNET_REFUSAL)


def controlnet_units(p) -> list:
    """The enabled units of Forge's built-in ControlNet in this request (the UNet guard catches any it misses)."""
    for script in (p.scripts.alwayson_scripts if p.scripts is not None else []):
        if script.title() == "ControlNet" and hasattr(script, "get_enabled_units"):
            try:
                return script.get_enabled_units(p.script_args[script.args_from:script.args_to])
            except Exception:
                return []
    return []


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
        if unet.controlnet_linked_list is not None:
            raise DemoFusionError(CONTROLNET_REFUSAL)
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
              strength: float = 1.0) -> tuple[torch.Tensor, int]:
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
        fusion = FusionWrapper(ps.runner, predictor, crop)
        unet.set_model_unet_function_wrapper(fusion)
        estimate = unet.model_options.get("memory_peak_estimation_modifier", unet.memory_required)
        # the UNet sees one view batch at a time, never the whole phase: let Forge plan memory for that
        views = settings.view_batch_size
        unet.set_memory_peak_estimation_modifier(
            lambda shape: estimate([shape[0] * views, shape[1], window[0], window[1]]))
        model.forge_objects.unet = unet
        out = webui.sample_phase(p, ps, settings, c, uc)
    finally:
        model.forge_objects = phase_one
    print(webui.phase_report(phase, ps.runner, fusion.counter, ["SDXL crop coordinates per view"] if crop else []))
    return anchor(out, z1), fusion.counter.calls


class FusionWrapper:
    """Forge's UNet function wrapper: one call = one fused evaluation, or a part of one (Forge splits rows by free
    memory, and calls cond and uncond apart when their prompts differ in length): the CFG denoiser's
    evaluation() block (hosts/webui.py) keeps one layout for all parts."""

    def __init__(self, runner: PhaseRunner, predictor, crop: CropColumns | None):
        self.runner, self.predictor, self.crop = runner, predictor, crop
        self.counter = EvalCounter(None)

    def __call__(self, model_function, params: dict) -> torch.Tensor:
        x, sigma, c = params["input"], params["timestep"], params["c"]
        chunks = list(params["cond_or_uncond"])
        rows = x.shape[0]
        per_chunk = sigma[:rows // len(chunks)]
        t = float(self.predictor.timestep(sigma[:1])[0])
        self.counter.fn = model_function
        spatial = {k: v for k, v in c.items() if k != "transformer_options"}
        options = c.get("transformer_options", {})

        def predict(xb, **kw):
            if webui.interrupted():
                raise InterruptedException
            return self.counter(xb, sigma.repeat(xb.shape[0] // rows), **kw["c"])

        def condition(views):
            n = len(views)
            cc = split_cond(spatial, views, rows, x.shape[-2:], self.crop, vector_key="y")
            cc["transformer_options"] = chunk_options(options, chunks * n, per_chunk)
            return {"c": cc}
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
