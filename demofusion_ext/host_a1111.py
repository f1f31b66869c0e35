"""AUTOMATIC1111 WebUI (v1.10) adapter: runs phases 2..S with the WebUI's own sampler and model.

The only engine-side module that imports the WebUI. Hook points (measured in
../shared/design/WEBUI-HOST-NOTES.md):
- `p.sample` is replaced: phase 1 is the original sample; phases >= 2 create a fresh sampler each.
- skip residual: an instance attribute on `sampler.model_wrap_cfg.forward` mixes the sampler state in
  place before the first evaluation of each step (`callback_state` marks step boundaries).
- fusion: an instance attribute on `sd_model.apply_model` turns each raw prediction into the fused one.
Every hook is removed in `finally`.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np
import torch

from modules import devices, images, processing, rng, sd_samplers, shared
from modules.sd_samplers_common import InterruptedException

from .controlnet_hints import PhaseHints, unsupported_unit
from .counting import EvalCounter
from .driver import upscale_latent
from .phase_runner import PhaseRunner
from .phases import plan_phases
from .settings import DemoFusionSettings
from .skip_residual import anchor
from .tiled_vae import tiled_decode
from .views import View

# Samplers whose state cannot be mixed per step (measured; see the host notes, section 1)
UNSUPPORTED_SAMPLERS = {
    "DPM adaptive": "its step count depends on the data and rejected steps repeat evaluations",
    "DPM fast": "its internal steps have a varying number of evaluations with no step boundary the extension can see",
    "UniPC": "it rebuilds its state from values computed before the model call, so the skip residual cannot reach it",
}
TIMESTEP_SAMPLERS = {"DDIM", "DDIM CFG++", "PLMS", "UniPC"}


class DemoFusionError(ValueError):
    """A request DemoFusion cannot run; the message names the problem and the fix."""


def supported_samplers() -> list[str]:
    return [s.name for s in sd_samplers.all_samplers if s.name not in UNSUPPORTED_SAMPLERS]


def check_request(p) -> None:
    """Refuse, before any sampling, what DemoFusion cannot do."""
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
    if getattr(shared.sd_model, "is_sd3", False):
        raise DemoFusionError("DemoFusion supports SD1.x, SD2.x and SDXL checkpoints, not SD3.")


@dataclass
class RunRecord:
    """What a run leaves for the script's postprocess: phase images and how far it got."""
    phase_images: list = field(default_factory=list)     # (phase, [C,H,W] in [-1, 1]) per image
    phases_planned: int = 0
    error: str | None = None


def install(p, settings: DemoFusionSettings, record: RunRecord) -> None:
    """Replace p.sample with the DemoFusion phases around the original sample."""
    original = p.sample

    def sample(conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts):
        return run(p, original, settings, record, conditioning, unconditional_conditioning,
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


def encode_init_tiled(p, settings: DemoFusionSettings) -> None:
    """img2img: a large init picture is encoded again with the tiled encoder (the WebUI encoded it whole)."""
    if p.width * p.height <= settings.decode_tile_size ** 2:
        return
    from .tiled_vae import tiled_encode
    pictures = [np.asarray(images.resize_image(p.resize_mode, img.convert("RGB"), p.width, p.height))
                for img in p.init_images]
    batch = torch.from_numpy(np.stack(pictures)).permute(0, 3, 1, 2).float() / 127.5 - 1
    if len(pictures) == 1 and p.batch_size > 1:
        batch = batch.expand(p.batch_size, -1, -1, -1)
    model = p.sd_model

    def encode(x):
        x = x.to(shared.device, devices.dtype_vae)
        return model.get_first_stage_encoding(model.encode_first_stage(x))
    with torch.no_grad():
        tile = settings.decode_tile_size
        p.init_latent = tiled_encode(encode, batch, tile=tile, overlap=tile // 4).to(p.init_latent)


def show_preview(latent: torch.Tensor) -> None:
    """The finished phase in the WebUI's live preview, with the cheap preview decoder the user chose."""
    try:
        shared.state.assign_current_image(sd_samplers.sample_to_image(latent, 0))
    except Exception as e:          # a preview must never cost the image
        print(f"[DemoFusion] no live preview: {e}")


def controlnet_units(p) -> list:
    """sd-webui-controlnet's enabled units (their ControlParams), found without importing ControlNet."""
    for script in (p.scripts.alwayson_scripts if p.scripts is not None else []):
        if script.title() == "ControlNet":
            network = getattr(script, "latest_network", None)
            return list(network.control_params) if network is not None else []
    return []


def check_controlnet_units(p) -> None:
    """Refuse, before phase 1, units whose control cannot be cut into views."""
    for i, param in enumerate(controlnet_units(p)):
        reason = unsupported_unit(param)
        if reason:
            raise DemoFusionError(f"DemoFusion cannot serve ControlNet unit {i} per view: {reason}. "
                                  f"Disable that unit, or use a ControlNet model with an image hint (canny, depth, "
                                  f"lineart, tile, ...) and a preprocessor that is not inpaint or reference.")


def run(p, original, settings, record, c, uc, seeds, subseeds, subseed_strength, prompts):
    check_controlnet_units(p)
    if is_img2img(p):
        encode_init_tiled(p, settings)
    z1 = original(conditioning=c, unconditional_conditioning=uc, seeds=seeds, subseeds=subseeds,
                  subseed_strength=subseed_strength, prompts=prompts)
    h, w = z1.shape[-2:]
    phases = plan_phases(h, w, settings.scale)
    record.phases_planned = len(phases)
    result, done = z1, phases[0]
    if settings.phase_images and len(phases) > 1:
        record.phase_images.append((done, decode(p, z1, settings)))
    for phase in phases[1:]:
        if interrupted():
            break
        shared.state.nextjob()
        try:
            out = run_phase(p, phase, (h, w), settings, result, z1, c, uc)
        except InterruptedException:
            break
        except Exception as e:              # never lose the finished phases
            record.error = f"phase {phase.index} failed: {e}"
            print(f"[DemoFusion] {record.error}; returning phase {done.index}")
            break
        if interrupted():                   # the sampler returned a partial phase
            break
        result, done = out, phase
        show_preview(result)
        if settings.phase_images and phase is not phases[-1]:
            record.phase_images.append((phase, decode(p, result, settings)))
    if done.index == 1:
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


def run_phase(p, phase, window, settings, previous, z1, c, uc) -> torch.Tensor:
    z = upscale_latent(previous, phase.shape)
    p.rng = rng.ImageRNG(z.shape[1:], p.seeds, subseeds=p.subseeds, subseed_strength=p.subseed_strength,
                         seed_resize_from_h=0, seed_resize_from_w=0)
    noise = p.rng.next()
    sampler = sd_samplers.create_sampler(p.sampler_name, p.sd_model)
    p.sampler = sampler
    runner = PhaseRunner(phase, window, settings, z, noise, seed=int(p.seeds[0]))
    image_cond = p.txt2img_image_conditioning(z)
    if p.scripts is not None:
        p.scripts.process_before_every_sampling(p=p, x=z, noise=noise, c=c, uc=uc)
    timestep = sampler.config.name in TIMESTEP_SAMPLERS if sampler.config else False
    counter = EvalCounter(p.sd_model.apply_model)
    units = controlnet_units(p)
    hints = PhaseHints(units, phase.shape) if units else None
    crop = CropColumns.find(p.sd_model)
    # img2img: the user's denoising strength also bounds how far the enlarged phases may depart
    strength = settings.phase_denoise * (p.denoising_strength if is_img2img(p) else 1.0)
    with hooked(p, sampler, runner, timestep, counter, hints, crop), restored(p, "denoising_strength", strength), \
            restored(shared.opts.data, "img2img_extra_noise", 0.0, item=True):
        if timestep and strength >= 1:
            # sample_img2img of the timestep samplers starts one step late; start from x_T ourselves
            t_first = int(sampler.get_timesteps(p, p.steps)[-1])
            a = p.sd_model.alphas_cumprod[t_first].to(z.device, z.dtype)
            x = a.sqrt() * z + (1 - a).sqrt() * noise
            out = sampler.sample(p, x, c, uc, image_conditioning=image_cond)
        else:
            out = sampler.sample_img2img(p, z, noise, c, uc, steps=p.steps, image_conditioning=image_cond)
    p.sampler = None
    print(f"[DemoFusion] phase {phase.index} at {phase.width * 8}x{phase.height * 8}: {runner.evaluations} fused "
          f"evaluations, {counter.calls} UNet calls, {counter.rows} rows"
          + (", SDXL crop coordinates per view" if crop else "")
          + (f", {len(units)} ControlNet unit(s) per view, phase hints {hints.nbytes / 2 ** 20:.2f} MiB on the CPU"
             if hints else ""))
    return anchor(out, z1)


_MISSING = object()


@contextlib.contextmanager
def restored(obj, name, value, item=False):
    """Set an attribute (or dict item) for the block, then put back exactly what was there (or nothing)."""
    old = obj.get(name, _MISSING) if item else getattr(obj, name, _MISSING)
    if item:
        obj[name] = value
    else:
        setattr(obj, name, value)
    try:
        yield
    finally:
        if old is _MISSING:
            obj.pop(name, None) if item else delattr(obj, name)
        elif item:
            obj[name] = old
        else:
            setattr(obj, name, old)


@contextlib.contextmanager
def hooked(p, sampler, runner: PhaseRunner, timestep: bool, apply_model, hints: "PhaseHints | None" = None,
           crop: "CropColumns | None" = None):
    """The skip-residual hook on the sampler's CFG denoiser and the fusion hook on apply_model."""
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

    def mixing_forward(x, sigma, *args, **kwargs):
        if boundary["first"]:
            if boundary["skip"]:
                boundary["skip"] -= 1
            else:
                boundary["first"] = False
                if timestep:
                    t = int(sigma[0])
                    runner.mix(x, t, alpha_bar=model.alphas_cumprod[t].to(x.device, x.dtype))
                else:
                    runner.mix(x, float(sampler.model_wrap.sigma_to_t(sigma[:1])[0]), sigma=sigma.view(-1, 1, 1, 1))
        return cfg_forward(x, sigma, *args, **kwargs)

    v_model = getattr(model, "parameterization", "eps") == "v"

    def fused_apply_model(x, t, cond=None, *args, **kwargs):
        rows = x.shape[0]
        tv = float(t.flatten()[0])

        def predict(xb, **kw):
            if interrupted():
                raise InterruptedException
            n = xb.shape[0] // rows
            with hints.serving(kw["views"], rows, xb.device) if hints else contextlib.nullcontext():
                return apply_model(xb, t.repeat(n), cond=kw["cond"], *args, **kwargs)

        def condition(views):
            return {"cond": split_cond(cond, views, rows, x.shape[-2:], crop), "views": views}
        v_sigma = None
        if v_model:
            a = model.alphas_cumprod[int(round(tv))].to(x.device, x.dtype)
            v_sigma = ((1 - a) / a).sqrt()
        return runner.predict(predict, x, tv, condition, v_sigma=v_sigma)

    cfg.forward = mixing_forward
    sampler.callback_state = step_callback
    model.apply_model = fused_apply_model
    try:
        yield
    finally:
        for obj, name in ((model, "apply_model"), (cfg, "forward"), (sampler, "callback_state")):
            obj.__dict__.pop(name, None)


def split_cond(cond, views: list[View], rows: int, latent_hw, crop: "CropColumns | None"):
    """The conditioning for stacked views (rows view-major): repeat per-row tensors, crop spatial ones."""
    n = len(views)

    def one(value):
        if isinstance(value, dict):
            return {k: (crop.apply(v, views, rows) if k == "vector" and crop else one(v)) for k, v in value.items()}
        if isinstance(value, list):
            return [one(v) for v in value]
        if not isinstance(value, torch.Tensor) or value.ndim == 0 or value.shape[0] != rows:
            return value
        if value.ndim == 4 and tuple(value.shape[-2:]) == tuple(latent_hw) and latent_hw != (1, 1):
            return torch.cat([v.extract(value) for v in views])       # spatial, e.g. inpainting c_concat
        return value.repeat(n, *([1] * (value.ndim - 1)))
    return one(cond)


class CropColumns:
    """SDXL's crop-coordinate micro-conditioning inside `vector`.

    `vector` is [pooled text | original size | crop top-left | target size] (measured), so the crop
    columns are the second-to-last block of the crop embedder's width.
    """

    def __init__(self, embedder):
        self.embedder, self.width = embedder, embedder.outdim * 2

    @classmethod
    def find(cls, model):
        for emb in getattr(getattr(model, "conditioner", None), "embedders", []):
            if getattr(emb, "input_key", None) == "crop_coords_top_left":
                return cls(emb)
        return None

    def apply(self, vector: torch.Tensor, views: list[View], rows: int) -> torch.Tensor:
        out = vector.repeat(len(views), 1)
        start = vector.shape[1] - 2 * self.width
        for i, v in enumerate(views):
            if v.kind == "local":        # global views keep the prompt's own crop (0, 0 by default)
                coords = torch.tensor([[max(0, v.top) * 8.0, max(0, v.left) * 8.0]], device=vector.device)
                with torch.no_grad():
                    out[i * rows:(i + 1) * rows, start:start + self.width] = self.embedder(coords).to(vector.dtype)
        return out
