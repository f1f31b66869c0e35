"""Tiny real components with random weights (diffusers configs), shared by the engine tests and bench/."""
import torch


def _seeded(build):
    torch.manual_seed(0)
    return build().eval().requires_grad_(False)


def tiny_unet(sdxl: bool = False):
    """An SD1-style UNet (cross-attention on a 32-wide text context), base latent 16x16; with `sdxl`, SDXL's
    text_time added conditions (pooled text + 6 size/crop numbers)."""
    from diffusers import UNet2DConditionModel
    extra = dict(addition_embed_type="text_time", addition_time_embed_dim=8,
                 projection_class_embeddings_input_dim=32 + 6 * 8) if sdxl else {}
    return _seeded(lambda: UNet2DConditionModel(
        sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=32, **extra))


def tiny_vae():
    """An SD-shaped AutoencoderKL (8x, 4 latent channels) at tiny width."""
    from diffusers import AutoencoderKL
    return _seeded(lambda: AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(32, 32, 64, 64), layers_per_block=1,
        latent_channels=4, norm_num_groups=32, sample_size=64))


def sd1_predict(unet, text):
    """predict(x, t, **cond) for the driver: rows are view-major copies of the images' rows."""
    def predict(x, t, context=None):
        ctx = text if context is None else context
        ctx = ctx.repeat(x.shape[0] // ctx.shape[0], 1, 1)
        return unet(x, t, encoder_hidden_states=ctx).sample
    return predict
