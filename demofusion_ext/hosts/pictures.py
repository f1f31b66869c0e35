"""Pictures in and out of latents for the phase loop, on every host: tiled VAE encode and decode (memory bounded by
the decode tile), the img2img picture, the Phase upscaler's enlargement in pixel space, and the live preview.
(The test probes wrap `encode_picture` and `decode` here by name: call them through this module.)"""
from __future__ import annotations

import numpy as np
import torch

from modules import devices, images, processing, sd_samplers, shared

from ..settings import LATENT, DemoFusionSettings
from ..tiled_vae import tiled_decode, tiled_encode
from ..upscale import upscale_latent
from .refusals import host_upscaler_names


def to_uint8(decoded: torch.Tensor) -> torch.Tensor:
    """Decoded images in [-1, 1] as compact uint8 HWC on the CPU: a phase image is kept until postprocess."""
    # in place: `decoded` is this module's own fresh decode, and a float copy of a 4x phase is hundreds of MiB
    return decoded.clamp_(-1, 1).add_(1).mul_(127.5).round_().to(torch.uint8).permute(0, 2, 3, 1).cpu()


def is_img2img(p) -> bool:
    return isinstance(p, processing.StableDiffusionProcessingImg2Img)


def picture_size(p) -> tuple[int, int] | None:
    """img2img: the (width, height) every init picture covers; txt2img: None."""
    pictures = getattr(p, "init_images", None) if is_img2img(p) else None
    if not pictures:
        return None
    return min(img.width for img in pictures), min(img.height for img in pictures)


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
    """A finished phase's latent at the next phase's size, and the picture it was enlarged in (uint8 [B, H, W, 3], or
    None): DemoFusion's bicubic latent enlargement, or (Phase upscaler) decoded, enlarged by the WebUI's upscaler in
    pixel space and encoded again. `pixels`: the phase's decode, when already made for the phase images."""
    if tuple(latent.shape[-2:]) == phase.shape:
        return latent, None
    if settings.upscaler == LATENT:
        return upscale_latent(latent, phase.shape), None
    if pixels is None:
        pixels = to_uint8(decode(p, latent, settings))
    width, height = phase.width * 8, phase.height * 8
    own = settings.upscaler not in host_upscaler_names()        # Lanczos on a host that does not list it

    def one(row):
        picture = images.Image.fromarray(row.numpy())
        if own:
            return picture.resize((width, height), images.Image.LANCZOS)
        return images.resize_image(0, picture, width, height, upscaler_name=settings.upscaler)
    enlarged = [np.asarray(one(row).convert("RGB")) for row in pixels]
    return encode_pixels(p, enlarged, settings).to(latent), torch.from_numpy(np.stack(enlarged))


def show_preview(latent: torch.Tensor) -> None:
    """The finished phase in the WebUI's live preview, with the cheap preview decoder the user chose."""
    try:
        shared.state.assign_current_image(sd_samplers.sample_to_image(latent, 0))
    except Exception as e:          # a preview must never cost the image
        print(f"[DemoFusion] no live preview: {e}")


def decode(p, latent: torch.Tensor, settings: DemoFusionSettings) -> torch.Tensor:
    """Tiled VAE decode to [-1, 1] on the CPU, tile per the settings (latent cells = pixels / 8)."""
    tile = settings.decode_tile_size // 8

    def one(z):
        return processing.decode_first_stage(p.sd_model, z).to(devices.cpu, torch.float32)
    with torch.no_grad():
        return tiled_decode(one, latent, tile=tile, overlap=max(2, tile // 4), out_device=devices.cpu,
                            out_dtype=torch.float32)
