#!/usr/bin/env python3
"""Write a random-weight checkpoint that Forge Neo detects as Mugen: a model family DemoFusion refuses.

    python tests/hosts/tiny_models/make_tiny_mugen.py --sdxl tiny-std-sdxl.safetensors --out tiny-mugen.safetensors

Why Mugen: the test of "a model DemoFusion cannot handle is refused, naming its family" needs a non-SD family that
Neo loads on this machine. Flux, Chroma, Z-Image and Qwen-Image need T5-XXL or Qwen text encoders, which Neo builds
at full size (many GB). Mugen (Neo `modules_forge/packages/huggingface_guess/model_list.py` class Mugen,
`backend/diffusion_engine/mugen.py`) is an SDXL UNet with 32 latent channels and flow prediction, SDXL's two CLIPs
and a Flux.2-latent VAE (`backend/huggingface/CabalResearch/Mugen/vae/config.json`: SDXL's VAE layout with
32 latent channels, plus a batch-norm over the 2x2-packed 128 channels). So it is the standard-depth tiny SDXL
(make_tiny_sdxl.py) with only the tensors whose shape depends on the latent channels made anew: detection tells it
from SDXL by `out_channels == 32` alone.
"""
import argparse
import hashlib

import torch
from safetensors.torch import load_file, save_file

LATENT = 32                      # Mugen's UNet and VAE latent channels (Flux.2's 128, unpacked 2x2)
UNET = "model.diffusion_model."
VAE = "first_stage_model."       # one of Mugen's vae_key_prefix


def replaced(sd: dict, seed: int) -> dict:
    """The tensors whose shapes follow the latent channels, in the layouts of the SDXL file's own keys."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape, fan_in):
        return (torch.randn(*shape, generator=g) / fan_in ** 0.5).to(torch.float16)
    width = sd[UNET + "input_blocks.0.0.weight"].shape[0]
    mid = sd[VAE + "encoder.conv_out.weight"].shape[1]
    return {
        UNET + "input_blocks.0.0.weight": rand(width, LATENT, 3, 3, fan_in=9 * LATENT),
        UNET + "out.2.weight": rand(LATENT, width, 3, 3, fan_in=9 * width),
        UNET + "out.2.bias": rand(LATENT, fan_in=1) * 0.01,
        VAE + "encoder.conv_out.weight": rand(2 * LATENT, mid, 3, 3, fan_in=9 * mid),
        VAE + "encoder.conv_out.bias": rand(2 * LATENT, fan_in=1) * 0.01,
        VAE + "quant_conv.weight": rand(2 * LATENT, 2 * LATENT, 1, 1, fan_in=2 * LATENT),
        VAE + "quant_conv.bias": rand(2 * LATENT, fan_in=1) * 0.01,
        VAE + "post_quant_conv.weight": rand(LATENT, LATENT, 1, 1, fan_in=LATENT),
        VAE + "post_quant_conv.bias": rand(LATENT, fan_in=1) * 0.01,
        VAE + "decoder.conv_in.weight": rand(mid, LATENT, 3, 3, fan_in=9 * LATENT),
        VAE + "bn.running_mean": torch.zeros(4 * LATENT),
        VAE + "bn.running_var": torch.ones(4 * LATENT),
        VAE + "bn.num_batches_tracked": torch.tensor(0),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sdxl", required=True, help="the standard-depth tiny SDXL (make_tiny_sdxl.py)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    sd = load_file(a.sdxl)
    sd.update(replaced(sd, a.seed))
    # no v-prediction markers: Mugen's model type is FLOW whatever the file says
    sd = {k: v for k, v in sd.items() if k not in ("v_pred", "ztsnr")}
    save_file(dict(sorted(sd.items())), a.out, metadata={"format": "pt", "note": "tiny random Mugen (Forge Neo)",
                                                         "seed": str(a.seed)})
    digest = hashlib.sha256(open(a.out, "rb").read()).hexdigest()
    print(f"wrote {a.out}: {len(sd)} tensors, sha256 {digest}")


if __name__ == "__main__":
    main()
