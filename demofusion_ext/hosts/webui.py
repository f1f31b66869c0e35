"""What the two WebUI hosts (A1111 v1.10 and Forge) share: the phase loop around `p.sample`, the
skip-residual hook on the sampler, tiled decoding and refusals. Host adapters import this; only
host modules import the WebUI's `modules`.

Hook points (measured in ../shared/design/WEBUI-HOST-NOTES.md and FORGE-HOST-NOTES.md):
- `p.sample` is replaced: phase 1 is the original sample; phases >= 2 create a fresh sampler each
  and call the host's `run_phase`, which adds the fusion hook (A1111: `apply_model`; Forge: the UNet
  function wrapper).
- skip residual: an instance attribute on `sampler.model_wrap_cfg.forward` mixes the sampler state in
  place before the first evaluation of each step (`callback_state` marks step boundaries); the same on
  both hosts. Each call of that forward is one evaluation: every UNet call inside it shares one set of views.
Every hook is removed in `finally`, restoring exactly what was there before.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from modules import devices, images, processing, rng, sd_samplers, shared
from modules.sd_samplers_common import InterruptedException

from ..phase_runner import PhaseRunner
from ..phases import entry_phase, plan_phases
from ..settings import LATENT, DemoFusionSettings
from ..skip_residual import noised_vp
from ..tiled_vae import tiled_decode, tiled_encode
from ..upscale import upscale_latent
from ..view_batch import ViewBatch

# Samplers whose state cannot be mixed per step (measured; see the host notes, section 1)
UNSUPPORTED_SAMPLERS = {
    "DPM adaptive": "its step count depends on the data and rejected steps repeat evaluations",
    "DPM fast": "its internal steps have a varying number of evaluations with no step boundary the extension can see",
    "UniPC": "it rebuilds its state from values computed before the model call, so the skip residual cannot reach it",
    # Forge only
    "HeunPP2": "it makes one, two or three model evaluations per step, so no step boundary is visible to the extension",
}
TIMESTEP_SAMPLERS = {"DDIM", "DDIM CFG++", "PLMS"}


class DemoFusionError(ValueError):
    """A request DemoFusion cannot run; the message names the problem and the fix."""


def supported_samplers() -> list[str]:
    return [s.name for s in sd_samplers.all_samplers if s.name not in UNSUPPORTED_SAMPLERS]


def native_size(model) -> int:
    """The side the model was trained at: what Width and Height should be."""
    return 1024 if getattr(model, "is_sdxl", False) else 768 if getattr(model, "is_sd2", False) else 512


def check_size(p, settings: DemoFusionSettings) -> None:
    """Refuse sizes that cannot be saved, or whose phase 1 alone would take hours, before any work."""
    final = plan_phases(p.height // 8, p.width // 8, settings.scale)[-1]
    megapixels = final.width * final.height * 64 / 1e6
    limit = float(getattr(shared.opts, "img_max_size_mp", 200) or 200)
    if megapixels > limit:
        raise DemoFusionError(f"DemoFusion's output {size_of(final)} ({megapixels:.0f} MP) is above the WebUI's Maximum "
                              f"image size ({limit:g} MP, Settings > Saving images/grids): lower Scale or Width x "
                              f"Height, or raise that setting.")
    native = native_size(p.sd_model)
    if max(p.width, p.height) > 2 * native:
        raise DemoFusionError(f"Width x Height {p.width}x{p.height} is far above this model's native size ({native} px), "
                              f"where DemoFusion's phase 1 and every window would repeat the picture: set them near "
                              f"{native} x {native} and let Scale set the final size.")


def upscaler_names() -> list[str]:
    """The Phase upscaler choices: DemoFusion's latent enlargement, then every upscaler the WebUI lists."""
    return [LATENT] + [u.name for u in shared.sd_upscalers if u.name not in ("None", LATENT)]


def check_request(p, settings: DemoFusionSettings) -> None:
    """Refuse, before any sampling, what DemoFusion cannot do on either host."""
    check_size(p, settings)
    if settings.upscaler not in upscaler_names():
        raise DemoFusionError(f"DemoFusion's Phase upscaler '{settings.upscaler}' is not one of this WebUI's "
                              f"upscalers: choose one of: {', '.join(upscaler_names())}.")
    config = sd_samplers.find_sampler_config(p.sampler_name)
    name = config.name if config else p.sampler_name
    if name in UNSUPPORTED_SAMPLERS:
        raise DemoFusionError(f"DemoFusion cannot use the sampler '{name}': {UNSUPPORTED_SAMPLERS[name]}. "
                              f"Choose one of: {', '.join(supported_samplers())}.")
    if getattr(p, "enable_hr", False):
        raise DemoFusionError("DemoFusion and Hires. fix both enlarge the image: turn off Hires. fix "
                              "(DemoFusion's scale sets the final size).")
    if getattr(p, "refiner_checkpoint", None) not in (None, "", "None"):
        raise DemoFusionError("DemoFusion does not support the Refiner: turn the Refiner off.")
    if getattr(p, "image_mask", None) is not None:
        raise DemoFusionError("DemoFusion cannot inpaint: remove the mask (use the img2img tab without a mask "
                              "to enlarge the whole picture).")


@dataclass
class RunRecord:
    """What a run leaves for the script's postprocess: phase images and how far it got."""
    phase_images: list = field(default_factory=list)     # (iteration, phase, uint8 [B, H, W, 3] on the CPU)
    phases_planned: int = 0
    error: str | None = None
    view_batch: ViewBatch | None = None                  # shrunk on out-of-memory, kept for the whole generation


def to_uint8(decoded: torch.Tensor) -> torch.Tensor:
    """Decoded images in [-1, 1] as compact uint8 HWC on the CPU: a phase image is kept until postprocess."""
    # in place: `decoded` is this module's own fresh decode, and a float copy of a 4x phase is hundreds of MiB
    return decoded.clamp_(-1, 1).add_(1).mul_(127.5).round_().to(torch.uint8).permute(0, 2, 3, 1).cpu()


# run_phase(p, phase, window, settings, start, z1, c, uc, view_batch, strength) -> (the phase's latent, UNet calls)
RunPhase = Callable[..., torch.Tensor]


def install(p, settings: DemoFusionSettings, record: RunRecord, run_phase: RunPhase,
            guard: Callable | None = None) -> None:
    """Replace p.sample with the DemoFusion phases around the original sample, inside the host's
    `guard(p)` context (its refusals and hooks that must span all phases)."""
    original = p.sample

    def sample(conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts):
        with guard(p) if guard is not None else contextlib.nullcontext():
            return run(p, original, settings, record, run_phase, conditioning, unconditional_conditioning,
                       seeds, subseeds, subseed_strength, prompts)
    p.sample = sample


def refuse(p, error: Exception) -> None:
    """Make the request fail with `error` at its first sampling (scripts' process() errors are only logged)."""
    def sample(*args, **kwargs):
        raise error
    p.sample = sample


def interrupted() -> bool:
    return bool(shared.state.interrupted or shared.state.skipped)


def is_img2img(p) -> bool:
    return isinstance(p, processing.StableDiffusionProcessingImg2Img)


def picture_size(p) -> tuple[int, int] | None:
    """img2img: the (width, height) every init picture covers; txt2img: None."""
    pictures = getattr(p, "init_images", None) if is_img2img(p) else None
    if not pictures:
        return None
    return min(img.width for img in pictures), min(img.height for img in pictures)


def plan(p, settings: DemoFusionSettings):
    """(the phases, the phase the run starts at): a large img2img picture enters at the largest phase it covers."""
    phases = plan_phases(p.height // 8, p.width // 8, settings.scale)
    return phases, entry_phase(phases, picture_size(p))


def encode_pixels(p, pictures: list[np.ndarray], settings: DemoFusionSettings) -> torch.Tensor:
    """uint8 HWC pictures to latents with the tiled encoder (memory bounded by the decode tile); one picture serves
    every image of the batch."""
    batch = torch.from_numpy(np.stack(pictures)).permute(0, 3, 1, 2).float() / 127.5 - 1
    if len(pictures) == 1 and p.batch_size > 1:
        batch = batch.expand(p.batch_size, -1, -1, -1)
    model = p.sd_model

    def encode(x):
        x = x.to(shared.device, devices.dtype_vae)
        return model.get_first_stage_encoding(model.encode_first_stage(x))   # Forge: encoding is the identity
    with torch.no_grad():
        tile = settings.decode_tile_size
        return tiled_encode(encode, batch, tile=tile, overlap=tile // 4)


def encode_picture(p, settings: DemoFusionSettings, width: int, height: int) -> torch.Tensor:
    """The img2img pictures at width x height px (the WebUI's resize mode), encoded tiled, one row per image."""
    pictures = [np.asarray(images.resize_image(p.resize_mode, img.convert("RGB"), width, height))
                for img in p.init_images]
    return encode_pixels(p, pictures, settings)


def encode_init_tiled(p, settings: DemoFusionSettings) -> None:
    """img2img: a large init picture is encoded again with the tiled encoder (the WebUI encoded it whole)."""
    if p.width * p.height <= settings.decode_tile_size ** 2:
        return
    p.init_latent = encode_picture(p, settings, p.width, p.height).to(p.init_latent)


def enlarge(p, latent: torch.Tensor, phase, settings: DemoFusionSettings, pixels: torch.Tensor | None = None):
    """A finished phase's latent at the next phase's size: DemoFusion's bicubic latent enlargement, or (Phase
    upscaler) decoded, enlarged by the WebUI's upscaler in pixel space and encoded again. `pixels`: the phase's
    decode as uint8 [B, H, W, 3], when already made for the phase images."""
    if tuple(latent.shape[-2:]) == phase.shape:
        return latent
    if settings.upscaler == LATENT:
        return upscale_latent(latent, phase.shape)
    if pixels is None:
        pixels = to_uint8(decode(p, latent, settings))
    width, height = phase.width * 8, phase.height * 8
    enlarged = [np.asarray(images.resize_image(0, images.Image.fromarray(row.numpy()), width, height,
                                               upscaler_name=settings.upscaler).convert("RGB"))
                for row in pixels]
    return encode_pixels(p, enlarged, settings).to(latent)


def show_preview(latent: torch.Tensor) -> None:
    """The finished phase in the WebUI's live preview, with the cheap preview decoder the user chose."""
    try:
        shared.state.assign_current_image(sd_samplers.sample_to_image(latent, 0))
    except Exception as e:          # a preview must never cost the image
        print(f"[DemoFusion] no live preview: {e}")


# infotext keys that describe one image of a batch count: reset as each image starts
OUTPUT_KEY, ERROR_KEY, STOPPED_KEY, NOTE_KEY = ("DemoFusion output size", "DemoFusion error", "DemoFusion stopped",
                                                "DemoFusion note")


def size_of(phase) -> str:
    return f"{phase.width * 8}x{phase.height * 8}"


# ... and one that describes the plan: where a large img2img picture entered
ENTRY_KEY = "DemoFusion picture entry"


def run(p, original, settings, record, run_phase: RunPhase, c, uc, seeds, subseeds, subseed_strength, prompts):
    params = p.extra_generation_params
    for key in (ERROR_KEY, STOPPED_KEY, NOTE_KEY):
        params.pop(key, None)
    if record.view_batch is None:
        record.view_batch = ViewBatch(settings.view_batch_size)
    phases, entry = plan(p, settings)
    record.phases_planned = len(phases)
    params[OUTPUT_KEY] = size_of(phases[-1])
    iteration = getattr(p, "iteration", 0)
    window = phases[0].shape
    pixels = None                           # the finished phase decoded, when made for its image or the upscaler
    notes, stopped = [], None
    view_prompts = None
    if settings.patch_prompts and len(phases) > 1:
        if entry.index > 1:
            notes.append("per-view prompts need phase 1's attention: the picture entered at a later phase, so every "
                         "view kept the full prompt")
        else:
            from .view_prompts import PatchPrompts
            view_prompts = PatchPrompts(p, settings, prompts)
    if entry.index == 1:
        if is_img2img(p):
            encode_init_tiled(p, settings)
        with view_prompts.capturing(phases[0].shape) if view_prompts is not None else contextlib.nullcontext():
            z1 = original(conditioning=c, unconditional_conditioning=uc, seeds=seeds, subseeds=subseeds,
                          subseed_strength=subseed_strength, prompts=prompts)
        if view_prompts is not None:
            view_prompts.finish(phases[0].shape)
        result, done = z1, phases[0]
        if settings.phase_images and len(phases) > 1:
            pixels = to_uint8(decode(p, z1, settings))
            record.phase_images.append((iteration, done, pixels))
    else:
        # the picture covers a later phase: it enters there with its own detail, the phases below are skipped
        params[ENTRY_KEY] = f"phase {entry.index} of {len(phases)} at {size_of(entry)}"
        print(f"[DemoFusion] the {'x'.join(map(str, picture_size(p)))} picture enters at phase {entry.index} "
              f"({size_of(entry)}); phases 1-{entry.index - 1} are skipped")
        z1 = encode_picture(p, settings, entry.width * 8, entry.height * 8)
        result, done = z1, None
    for phase in phases[entry.index if done is not None else entry.index - 1:]:
        if interrupted():
            stopped = phase
            break
        if done is not None:
            shared.state.nextjob()
        # the first phase that runs denoises at the user's strength; the enlarged ones at the phase strength
        strength = p.denoising_strength if done is None else settings.phase_denoise * (
            p.denoising_strength if is_img2img(p) else 1.0)
        try:
            start = enlarge(p, result, phase, settings, pixels)
            per_view = view_prompts.for_phase(phase, window) if view_prompts is not None else None
            out, calls = run_phase(p, phase, window, settings, start, z1, c, uc, record.view_batch, strength,
                                   view_prompts=per_view)
        except InterruptedException:
            stopped = phase
            break
        except Exception as e:              # never lose the finished phases
            if done is None:
                raise
            record.error = f"phase {phase.index} failed: {e}"
            print(f"[DemoFusion] {record.error}; returning phase {done.index}")
            # the infotext is written after sampling: the image's PNG info and the API's info say what happened
            params[ERROR_KEY] = f"{record.error}; the image is phase {done.index}"
            break
        if interrupted():                   # the sampler returned a partial phase
            stopped = phase
            break
        if calls == 0:
            notes.append(f"phase {phase.index} made no model evaluation (its denoising strength leaves no step of "
                         f"{p.steps}), so it is the phase before it enlarged; raise Sampling steps or the strength")
        result, done, pixels = out, phase, None
        show_preview(result)
        if phase is not phases[-1] and (settings.phase_images or settings.upscaler != LATENT):
            pixels = to_uint8(decode(p, result, settings))
            if settings.phase_images:
                record.phase_images.append((iteration, phase, pixels))
    if stopped is not None:
        how = "skipped" if shared.state.skipped else "interrupted"
        what = f"phase {done.index}" if done is not None else "the picture"
        params[STOPPED_KEY] = f"{how} in phase {stopped.index} of {len(phases)}; the image is {what}"
    if done is not phases[-1]:
        params[OUTPUT_KEY] = size_of(done if done is not None else entry)
        # the returned image is that phase: it is not repeated among the earlier phases' images
        record.phase_images = [e for e in record.phase_images if (e[0], e[1]) != (iteration, done)]
    if view_prompts is not None:
        notes += view_prompts.notes
    if notes:
        params[NOTE_KEY] = "; ".join(notes)
        print(f"[DemoFusion] {params[NOTE_KEY]}")
    if done is phases[0]:
        return result
    return processing.DecodedSamples(list(decode(p, result, settings)))


def decode(p, latent: torch.Tensor, settings: DemoFusionSettings) -> torch.Tensor:
    """Tiled VAE decode to [-1, 1] on the CPU, tile per the settings (latent cells = pixels / 8)."""
    tile = settings.decode_tile_size // 8

    def one(z):
        return processing.decode_first_stage(p.sd_model, z).to(devices.cpu, torch.float32)
    with torch.no_grad():
        return tiled_decode(one, latent, tile=tile, overlap=max(2, tile // 4), out_device=devices.cpu,
                            out_dtype=torch.float32)


@dataclass
class PhaseSampling:
    """One phase's sampler and the runner that its hooks call, made the same way on both hosts."""
    sampler: object
    runner: PhaseRunner
    z: torch.Tensor
    noise: torch.Tensor
    timestep: bool            # a timestep (DDIM-like) sampler: its state is VP, its "sigma" a timestep
    strength: float           # the phase's denoising strength (1 = from pure noise)


def new_phase(p, phase, window, settings: DemoFusionSettings, start: torch.Tensor, view_batch: ViewBatch | None = None,
              strength: float = 1.0) -> PhaseSampling:
    """The phase's starting latent (the previous phase enlarged, or the picture), the image's own noise at the phase
    size, and a fresh sampler for the phase."""
    z = start
    p.rng = rng.ImageRNG(z.shape[1:], p.seeds, subseeds=p.subseeds, subseed_strength=p.subseed_strength,
                         seed_resize_from_h=0, seed_resize_from_w=0)
    noise = p.rng.next()
    sampler = sd_samplers.create_sampler(p.sampler_name, p.sd_model)
    p.sampler = sampler
    runner = PhaseRunner(phase, window, settings, z, noise, seed=int(p.seeds[0]), view_batch=view_batch)
    timestep = sampler.config.name in TIMESTEP_SAMPLERS if sampler.config else False
    return PhaseSampling(sampler, runner, z, noise, timestep, strength)


def sample_phase(p, ps: PhaseSampling, settings: DemoFusionSettings, c, uc) -> torch.Tensor:
    """Run the phase's sampler from the noised enlarged latent, with the skip residual hooked in."""
    sampler, z, noise = ps.sampler, ps.z, ps.noise
    image_cond = p.txt2img_image_conditioning(z, width=z.shape[-1] * 8, height=z.shape[-2] * 8)
    strength = ps.strength
    with skip_residual_hook(p, sampler, ps.runner, ps.timestep), restored(p, "denoising_strength", strength), \
            restored(shared.opts.data, "img2img_extra_noise", 0.0, item=True):
        if ps.timestep and strength >= 1:
            # sample_img2img of the timestep samplers starts one step late; start from x_T ourselves
            t_first = int(sampler.get_timesteps(p, p.steps)[-1])
            x = noised_vp(z, noise, p.sd_model.alphas_cumprod[t_first])
            out = sampler.sample(p, x, c, uc, image_conditioning=image_cond)
        else:
            out = sampler.sample_img2img(p, z, noise, c, uc, steps=p.steps, image_conditioning=image_cond)
    p.sampler = None
    return out


_MISSING = object()


@contextlib.contextmanager
def restored(obj, name, value, item=False):
    """Set an instance attribute (or dict item) for the block, then put back exactly what the instance had:
    its own earlier value (another extension's hook), or nothing, so the class attribute shows through again."""
    own = obj if item else vars(obj)
    old = own.get(name, _MISSING)
    if item:
        obj[name] = value
    else:
        setattr(obj, name, value)
    try:
        yield
    finally:
        if old is _MISSING:
            own.pop(name, None)
        elif item:
            obj[name] = old
        else:
            setattr(obj, name, old)


@contextlib.contextmanager
def skip_residual_hook(p, sampler, runner: PhaseRunner, timestep: bool):
    """Mix the sampler's own state in place before the first evaluation of each step."""
    model = p.sd_model
    cfg = sampler.model_wrap_cfg
    cfg_forward = cfg.forward
    callback = sampler.callback_state
    second_order = bool(sampler.config and sampler.config.options.get("second_order"))
    # the first call of the run starts a step; after each step callback, a second-order
    # sampler makes one more evaluation of the same step before the next step starts
    boundary = {"first": True, "skip": 0}

    def step_callback(d):
        boundary["first"], boundary["skip"] = True, 1 if second_order else 0
        return callback(d)

    def evaluating_forward(x, sigma, *args, **kwargs):
        if boundary["first"]:
            if boundary["skip"]:
                boundary["skip"] -= 1
            else:
                boundary["first"] = False
                if timestep:
                    t = int(sigma[0])
                    runner.mix(x, t, alpha_bar=model.alphas_cumprod[t])
                else:
                    runner.mix(x, float(sampler.model_wrap.sigma_to_t(sigma[:1])[0]), sigma=sigma.view(-1, 1, 1, 1))
        with runner.evaluation():
            return cfg_forward(x, sigma, *args, **kwargs)

    with restored(cfg, "forward", evaluating_forward), restored(sampler, "callback_state", step_callback):
        yield


def phase_report(phase, runner: PhaseRunner, counter, extras: list[str]) -> str:
    return (f"[DemoFusion] phase {phase.index} at {phase.width * 8}x{phase.height * 8}: {runner.evaluations} fused "
            f"evaluations, {counter.calls} UNet calls, {counter.rows} rows" + "".join(", " + e for e in extras))
