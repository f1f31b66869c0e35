#!/usr/bin/env python3
"""Write a random-weight, *standard-depth* SDXL checkpoint that Forge Classic, Forge Neo and Forge 2 all load as SDXL.

    ~/forge-harness/venv/bin/python tests/hosts/tiny_models/make_tiny_sdxl.py --out FILE [--v-pred-ztsnr]

Why: the Forge 2 harness's tiny SDXL (../shared/forge-harness/bin/make_forge_tiny_sdxl.py) has KOALA-700M's input
transformer-depth list [0, 2, 5]. Forge 2's external huggingface_guess accepts that, but Classic
(ldm_patched/modules/supported_models.py:187-195, class SDXL) and Neo (modules_forge/packages/huggingface_guess/
model_list.py:186-197, class SDXL) accept an SDXL UNet only with transformer_depth == [0, 0, 2, 2, 10, 10] (one entry
per input res block), model_channels 320, linear proj_in, context 2048 and ADM 2816. Everything else (levels,
channel_mult, output-side and middle depths) is read from the file and the UNet is rebuilt from it, so it is free.

What this file does: it REUSES the shared maker instead of copying it. The shared maker is a script with module-level
code (argument parsing, Forge 2 imports, the UNET dict) and a main(). This wrapper compiles that file, executes its
module-level code in a fresh namespace with a prepared sys.argv (not as __main__, so main() does not run yet), then
replaces a few names in that namespace and calls its main():
  UNET               -> STD_UNET below (the standard-depth UNet, same argument names)
  write_safetensors  -> a wrapper that (with --v-pred-ztsnr) adds the marker keys and names this maker in the
                        metadata, then calls the shared writer (so its canonical header, its round-trip check and
                        its sha256 line all cover the markers)
  write_vae_approx   -> a no-op unless --vae-approx-dir is given (the shared maker would otherwise write
                        vaeapprox-sdxl.pt into the Forge 2 harness tree; Classic's harness uses "Approx cheap"
                        previews and needs no such file)
Everything else is the shared maker's: key names and shapes from Forge 2's own module classes on the meta device,
full-size CLIP-L / CLIP-G (OpenCLIP layout) / SDXL VAE, one generator per tensor seeded from (seed, key) so the same
seed gives a byte-identical file, nothing zero-initialised, the VAE posterior log-variance pinned below the clamp
(img2img determinism), fp16 storage, and its check that Forge 2's split (huggingface_guess + loader steps) hands every
component exactly its module's keys. On top of that this wrapper checks that Forge 2's guess is the plain SDXL class
(not KOALA/SSD-1B/Vega) with the standard depth list, and the model type (EPS, or V_PREDICTION with the markers).
Classic's and Neo's own detection code is checked by check_tiny_sdxl.py beside this file (other venvs/trees).

The UNet (STD_UNET): 320 channels everywhere (channel_mult all 1: detection reads channel_mult as out_channels // 320,
so no level can be narrower, and wider ones only cost), SIX levels of ONE res block each, carrying the depths
[0, 0, 2, 2, 10, 10], no transformer blocks on the output side, middle = one res block (depth -1: every host's UNet
always builds that res block, so -2 cannot be expressed), 64-channel heads. 149.6 M parameters.
Why six levels and not one: the 24 input-side transformer blocks dominate the cost, and each level halves the latent
they run on. Per batch-2 (CFG) UNet call, measured with torch.utils.flop_counter on Forge 2's UNet class:
      latent              8x8    16x16   24x24   32x32
      1 level  [6]        30.5    95.6   214.3   401.6 GFLOP  (123.4 M parameters)
      3 levels [2,2,2]    15.5    32.8    61.9   102.8        (133.9 M, SDXL's own layout at width 320)
      6 levels [1]*6      13.1    22.5    38.4    60.3        (149.6 M)  <- chosen
      (KOALA tiny-forge-sdxl 6.3 / 16.6 / 33.9 / 58.1)
About 9.7 GFLOP of each call is fixed: the cross-attention key/value projections of the 77x2048 context in all 24
blocks, whatever the latent size. Small latents simply end at 1x1 in the deepest levels; every host's UNet (Classic's
ldm_patched openaimodel, Forge 2's and Neo's backend/nn/unet.py) up-samples to the skip connection's shape
(output_shape), so odd latent sizes work too.

--v-pred-ztsnr: the very same tensors (same seed, so same weights) plus two marker keys, "v_pred" and "ztsnr", each an
empty float32 tensor (shape [0]): the convention of ComfyUI's checkpoint saver (Classic carries the same code:
ldm_patched/modules/model_base.py:242 `unet_state_dict["v_pred"] = torch.tensor([])`) that NoobAI-style v-prediction
checkpoints use. Hosts test only the keys' presence:
  Neo:     modules_forge/packages/huggingface_guess/model_list.py:206  `if "v_pred" in state_dict:` -> V_PREDICTION
           backend/loader.py:853  `guess.ztsnr = "ztsnr" in sd`  (used at modules/processing.py:1074)
  Classic: modules/sd_models_config.py:30 `'v_pred' in sd` -> configs/sd_xl_v.yaml; supported_models.py:200 pops it
           -> V_PREDICTION; modules_forge/forge_loader.py:151 pops "ztsnr" -> sd_model.ztsnr
  Forge 2: huggingface_guess model_list.py:287 "v_pred"; backend/loader.py:462 `guess.ztsnr = 'ztsnr' in sd`
The markers hold no values (so "every tensor random" does not apply to them). The file differs from the plain one
only by these two header entries and the metadata, so the two models have identical networks.

Options: --seed (default: the shared maker's, so CLIP-L, CLIP-G and the VAE are bit-identical to the Forge 2 harness's
tiny-forge-sdxl), --dtype fp16|fp32, --forge (Forge 2 tree, default ~/forge-harness/forge), --maker (the shared maker;
default $FORGE2_BIN/make_forge_tiny_sdxl.py, else ../shared/forge-harness/bin beside the checkout), --no-check,
--vae-approx-dir DIR (also write the shared maker's random vaeapprox-sdxl.pt into DIR).
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKOUT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
DEFAULT_BIN = os.environ.get("FORGE2_BIN") or os.path.join(os.path.dirname(CHECKOUT), "shared", "forge-harness", "bin")

# The standard-depth UNet, in the argument names of Forge's UNet class (= the sgm / ldm_patched openaimodel names).
LEVELS = 6
STD_UNET = dict(
    in_channels=4, out_channels=4, model_channels=320,
    num_res_blocks=[1] * LEVELS, channel_mult=[1] * LEVELS,
    transformer_depth=[0, 0, 2, 2, 10, 10],          # one entry per input res block: what Classic and Neo require
    transformer_depth_output=[0] * (2 * LEVELS),     # one per output block (res blocks + 1 per level): free, so none
    transformer_depth_middle=-1,                     # middle block = one res block
    num_heads=-1, num_head_channels=64,
    context_dim=2048, use_linear_in_transformer=True,
    use_spatial_transformer=True, adm_in_channels=2816, num_classes="sequential", use_checkpoint=False,
)
MARKERS = ("v_pred", "ztsnr")


def parse():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="the .safetensors file to write")
    ap.add_argument("--v-pred-ztsnr", action="store_true",
                    help='add the "v_pred" and "ztsnr" marker keys (v-prediction, zero terminal SNR)')
    ap.add_argument("--seed", type=int, default=None, help="default: the shared maker's default seed")
    ap.add_argument("--dtype", choices=["fp16", "fp32"], default="fp16")
    ap.add_argument("--forge", default=os.path.join(os.environ.get("FORGE_HARNESS", os.path.expanduser("~/forge-harness")), "forge"),
                    help="Forge 2 work tree whose classes give the key names and shapes (default $FORGE_HARNESS/forge)")
    ap.add_argument("--maker", default=os.path.join(DEFAULT_BIN, "make_forge_tiny_sdxl.py"),
                    help="the shared Forge 2 harness maker to run (default %(default)s)")
    ap.add_argument("--vae-approx-dir", default=None, help="also write vaeapprox-sdxl.pt there (default: not written)")
    ap.add_argument("--no-check", action="store_true", help="skip the Forge 2 split / guess checks")
    return ap.parse_args()


def load_maker(a):
    """Run the shared maker's module-level code (its argparse, its Forge 2 imports, its definitions) in a namespace of
    our own and return that namespace; its main() is not called here."""
    argv = [a.maker, "--forge", a.forge, "--out", os.path.abspath(a.out), "--dtype", a.dtype]
    if a.seed is not None:
        argv += ["--seed", str(a.seed)]
    if a.no_check:
        argv += ["--no-check"]
    if a.vae_approx_dir:
        argv += ["--vae-approx-dir", a.vae_approx_dir]
    with open(a.maker) as f:
        code = compile(f.read(), a.maker, "exec")
    ns = {"__name__": "make_forge_tiny_sdxl", "__file__": a.maker, "__builtins__": __builtins__}
    saved = sys.argv
    sys.argv = argv
    try:
        exec(code, ns)
    finally:
        sys.argv = saved
    for name in ("UNET", "main", "collect_shapes", "write_safetensors", "write_vae_approx", "forge_split_check",
                 "huggingface_guess", "model_list", "torch", "safe_open"):
        assert name in ns, f"{a.maker} no longer defines {name}: this wrapper needs updating"
    return ns


def check_guess(ns, with_markers):
    """Forge 2's huggingface_guess on shapes alone: the plain SDXL class (not one of its KOALA / SSD-1B / Vega
    subclasses), the standard depth list, our layout, and the model type the markers ask for."""
    torch, hg, ml = ns["torch"], ns["huggingface_guess"], ns["model_list"]
    sd = {k: torch.empty(s, device="meta", dtype=torch.float16) for k, s in ns["collect_shapes"]().items()}
    if with_markers:
        for k in MARKERS:
            sd[k] = torch.empty(0, device="meta")
    guess = hg.guess(sd)
    assert type(guess) is ml.SDXL, f"Forge 2 guesses {type(guess).__name__}, not SDXL"
    cfg = guess.unet_config
    for k in ("transformer_depth", "num_res_blocks", "channel_mult", "transformer_depth_output", "transformer_depth_middle",
              "model_channels", "context_dim", "adm_in_channels"):
        got = list(cfg[k]) if isinstance(STD_UNET[k], list) else cfg[k]
        assert got == STD_UNET[k], (k, cfg[k], STD_UNET[k])
    want = ml.ModelType.V_PREDICTION if with_markers else ml.ModelType.EPS
    assert guess.model_type(sd) == want, guess.model_type(sd)
    print(f"Forge 2 huggingface_guess: {type(guess).__name__}, transformer_depth {cfg['transformer_depth']}, "
          f"{len(cfg['num_res_blocks'])} levels, model type {want.name}" + (", ztsnr key present" if with_markers else ""))


def main():
    a = parse()
    ns = load_maker(a)
    ns["UNET"] = STD_UNET
    shared_write = ns["write_safetensors"]

    def write_safetensors(sd, path, meta):
        meta = dict(meta)
        meta["note"] = ("random-weight test model made by tests/hosts/tiny_models/make_tiny_sdxl.py (standard SDXL "
                        "depth list) through the Forge 2 harness's make_forge_tiny_sdxl.py; NOT a real model")
        meta["v_pred_ztsnr"] = "1" if a.v_pred_ztsnr else "0"
        if a.v_pred_ztsnr:   # empty marker tensors, as ComfyUI's saver writes them (torch.tensor([]))
            for k in MARKERS:
                sd[k] = ns["torch"].empty(0, dtype=ns["torch"].float32)
        return shared_write(sd, path, meta)

    ns["write_safetensors"] = write_safetensors
    if not a.vae_approx_dir:
        ns["write_vae_approx"] = lambda path, seed: None
    if not a.no_check:
        check_guess(ns, a.v_pred_ztsnr)
    ns["main"]()
    with ns["safe_open"](a.out, framework="pt") as f:
        meta = f.metadata()
    assert json.loads(meta["tiny_unet"]) == json.loads(json.dumps(STD_UNET)), "the shared maker did not use STD_UNET"


if __name__ == "__main__":
    main()
