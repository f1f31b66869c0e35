#!/usr/bin/env python3
"""Check a tiny SDXL checkpoint (and its ControlNet) against Forge Classic's or Forge Neo's own detection code, on the
tensor shapes alone (read from the safetensors headers; no weights are loaded, all modules are built on the meta device).

  # Classic: its ldm_patched detection, its A1111 yaml choice, its UNet and ControlNet classes (Classic's venv)
  ~/forge-classic-harness/venv/bin/python tests/hosts/tiny_models/check_tiny_sdxl.py \
      --classic ~/forge-classic-harness/forge CKPT [--controlnet CN] [--expect-v-pred-ztsnr]
  # Neo: its vendored huggingface_guess (modules_forge/packages/huggingface_guess), its loader steps and, with Neo's
  # venv, its own UNet / ControlNet classes:
  ~/forge-neo-harness/venv/bin/python tests/hosts/tiny_models/check_tiny_sdxl.py \
      --neo ~/forge-neo-harness/forge CKPT [--controlnet CN] [--expect-v-pred-ztsnr]
  # without a Neo venv: a Neo tree from the mirror and the Forge 2 venv. Neo's backend then fails to import
  # (comfy_kitchen) and Forge 2's classes stand in: Neo's IntegratedUNet2DConditionModel is Forge 2's class
  # reformatted, its cldm.ControlNet adds only union-ControlNet parts and a hint_width argument read from the file.
  git --git-dir=$MIRROR/exo101+sd-webui-forge-neo-v3/repo archive HEAD webui/backend webui/modules_forge/packages | tar x
  ~/forge-harness/venv/bin/python tests/hosts/tiny_models/check_tiny_sdxl.py --neo webui --forge ~/forge-harness/forge CKPT

Exits non-zero on the first failed check. What it checks:
  - the host calls the UNet plain SDXL (Classic: supported_models.SDXL; Neo: model_list.SDXL, not Mugen etc.), with
    transformer_depth [0, 0, 2, 2, 10, 10];
  - the UNet the host builds from its own detected config has exactly the file's model.diffusion_model.* keys and shapes;
  - the model type: EPS, or V_PREDICTION with the "v_pred" key; the "ztsnr" key as the host reads it;
  - Classic: the A1111 yaml it picks (sd_xl_base.yaml, or sd_xl_v.yaml with "v_pred");
  - Neo: the state-dict split (loader.split_state_dict steps) gives every weight a component ("ignore" empty);
  - the ControlNet: the host detects it as the checkpoint's UNet config and the ControlNet it builds from that has
    exactly the file's keys and shapes, with one zero convolution per UNet input block.
"""
import argparse
import os
import sys

ap = argparse.ArgumentParser()
host = ap.add_mutually_exclusive_group(required=True)
host.add_argument("--classic", help="Forge Classic work tree (run with Classic's venv)")
host.add_argument("--neo", help="Forge Neo webui tree (run with Neo's venv, or with the Forge 2 harness venv)")
ap.add_argument("--forge", default=os.path.expanduser("~/forge-harness/forge"),
                help="Forge 2 tree whose classes stand in when Neo's backend does not import (Neo check only)")
ap.add_argument("ckpt")
ap.add_argument("--controlnet", default=None)
ap.add_argument("--expect-v-pred-ztsnr", action="store_true", help="the checkpoint must carry the v_pred/ztsnr markers")
a = ap.parse_args()
a.ckpt = os.path.abspath(a.ckpt)
a.controlnet = a.controlnet and os.path.abspath(a.controlnet)

UNET_P = "model.diffusion_model."
CN_P = "control_model."
STD_DEPTH = [0, 0, 2, 2, 10, 10]
CFG_KEYS = ("model_channels", "channel_mult", "num_res_blocks", "transformer_depth", "transformer_depth_middle",
            "context_dim", "adm_in_channels", "use_linear_in_transformer")


def header_shapes(path):
    from safetensors import safe_open
    with safe_open(path, framework="pt") as f:
        return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}


def meta_sd(shapes):
    import torch
    return {k: torch.empty(s, device="meta", dtype=torch.float16) for k, s in shapes.items()}


def same_shapes(name, want, got):
    missing, unexpected = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    wrong = sorted(k for k in set(want) & set(got) if tuple(want[k]) != tuple(got[k]))
    assert not (missing or unexpected or wrong), f"{name}: missing {missing[:5]}, unexpected {unexpected[:5]}, wrong {wrong[:5]}"
    print(f"  {name}: the host's module has exactly the file's {len(want)} keys and shapes")


def shapes_of(module, prefix=""):
    return {prefix + k: tuple(v.shape) for k, v in module.state_dict().items()}


def check_classic(tree, shapes, cn_shapes):
    tree = os.path.abspath(tree)
    os.chdir(tree)
    sys.path.insert(0, tree)
    sys.argv = [sys.argv[0], "--always-cpu", "--all-in-fp32"]
    from ldm_patched.modules import args_parser   # as modules_forge/initialization.py does, before model_management
    args_parser.args, _ = args_parser.parser.parse_known_args()
    import torch
    from ldm_patched.modules import model_detection, supported_models, model_base
    from ldm_patched.controlnet import cldm
    from modules import sd_models_config

    sd = meta_sd(shapes)
    # modules_forge/forge_loader.py:149-151: "ztsnr" is popped before anything else looks at the state dict
    ztsnr = sd.pop("ztsnr", None) is not None
    assert ztsnr == a.expect_v_pred_ztsnr, f"ztsnr key present: {ztsnr}"
    yaml = os.path.basename(sd_models_config.guess_model_config_from_state_dict(sd, ""))
    want_yaml = "sd_xl_v.yaml" if a.expect_v_pred_ztsnr else "sd_xl_base.yaml"
    assert yaml == want_yaml, yaml
    cfg = model_detection.model_config_from_unet(sd, UNET_P, torch.float32)
    assert type(cfg) is supported_models.SDXL, f"Classic detects {type(cfg).__name__}"
    assert cfg.unet_config["transformer_depth"] == STD_DEPTH
    mt = cfg.model_type(dict(sd))   # pops "v_pred" from its argument, as get_model does
    want_mt = model_base.ModelType.V_PREDICTION if a.expect_v_pred_ztsnr else model_base.ModelType.EPS
    assert mt == want_mt, mt
    print(f"Classic: {type(cfg).__name__} (supported_models), yaml {yaml}, model type {mt.name}, ztsnr {ztsnr};",
          {k: cfg.unet_config.get(k) for k in CFG_KEYS})
    # as load_checkpoint_guess_config builds it (model_config.get_model); the UNet alone on the meta device
    unet = model_base.SDXL(cfg, model_type=mt, device="meta").diffusion_model
    same_shapes("UNet (ldm_patched openaimodel.UNetModel)", {k: s for k, s in shapes.items() if k.startswith(UNET_P)},
                shapes_of(unet, UNET_P))
    if cn_shapes:
        csd = meta_sd(cn_shapes)
        # modules_forge/supported_controlnet.py ControlNetPatcher.try_build_from_state_dict
        ccfg = model_detection.model_config_from_unet(csd, CN_P, torch.float32, True)
        c = dict(ccfg.unet_config)
        assert all(c.get(k) == cfg.unet_config.get(k) for k in CFG_KEYS), \
            {k: (c.get(k), cfg.unet_config.get(k)) for k in CFG_KEYS if c.get(k) != cfg.unet_config.get(k)}
        c.pop("out_channels")
        c["hint_channels"] = cn_shapes[CN_P + "input_hint_block.0.weight"][1]
        with torch.device("meta"):
            net = cldm.ControlNet(**c)
        print(f"Classic ControlNet: detected as {type(ccfg).__name__} with the checkpoint's UNet config")
        same_shapes("ControlNet (ldm_patched cldm.ControlNet)", cn_shapes, shapes_of(net, CN_P))
        check_zero_convs(shapes, cn_shapes)


def check_neo(tree, forge, shapes, cn_shapes):
    tree, forge = os.path.abspath(tree), os.path.abspath(forge)
    guess_pkg = os.path.join(tree, "modules_forge", "packages")
    assert os.path.isdir(os.path.join(guess_pkg, "huggingface_guess")), guess_pkg
    # Neo's huggingface_guess first (the name is Forge 2's too); Neo's own backend classes when this venv can import
    # them (Neo's venv), else Forge 2's (same UNet / ControlNet layout, see the docstring)
    sys.path[:0] = [guess_pkg, tree]
    sys.argv = [sys.argv[0], "--cpu", "--force-fp32"]          # Neo's backend/args.py flags
    import torch
    import huggingface_guess
    from huggingface_guess import model_list
    from huggingface_guess.detection import model_config_from_unet
    assert huggingface_guess.__file__.startswith(guess_pkg), huggingface_guess.__file__
    try:
        from backend.nn.unet import IntegratedUNet2DConditionModel
        from backend.nn.cnets import cldm
        from backend.state_dict import try_filter_state_dict
        classes = "Neo's own"
    except ImportError as e:
        print(f"  (Neo's backend does not import here: {e!r}; using Forge 2's classes from {forge})")
        for m in [m for m in sys.modules if m == "backend" or m.startswith("backend.")]:
            del sys.modules[m]
        sys.path.remove(tree)
        sys.path[1:1] = [forge, os.path.join(forge, "packages_3rdparty")]
        sys.argv = [sys.argv[0], "--always-cpu", "--all-in-fp32"]   # Forge 2's flags
        from backend.nn.unet import IntegratedUNet2DConditionModel
        from backend.nn.cnets import cldm
        from backend.state_dict import try_filter_state_dict
        classes = "Forge 2's"
    assert os.path.abspath(sys.modules["backend"].__path__[0]).startswith(tree if classes == "Neo's own" else forge)

    sd = meta_sd(shapes)
    guess = huggingface_guess.guess(sd)           # backend/loader.py _load_unet
    assert type(guess) is model_list.SDXL, f"Neo guesses {type(guess).__name__}"
    assert guess.unet_config["transformer_depth"] == STD_DEPTH
    # backend/loader.py:851-853
    clip_target = guess.clip_target(sd)
    mt = guess.model_type(sd)
    ztsnr = "ztsnr" in sd
    want_mt = model_list.ModelType.V_PREDICTION if a.expect_v_pred_ztsnr else model_list.ModelType.EPS
    assert mt == want_mt and ztsnr == a.expect_v_pred_ztsnr, (mt, ztsnr)
    assert clip_target == {"clip_l": "text_encoder", "clip_g": "text_encoder_2"}, clip_target
    print(f"Neo: {type(guess).__name__} (vendored huggingface_guess), model type {mt.name}, ztsnr {ztsnr};",
          {k: guess.unet_config.get(k) for k in CFG_KEYS})
    # backend/loader.py:855-866 (split_state_dict): what no component takes ends in "ignore"
    sd = guess.process_vae_state_dict(sd)
    parts = {guess.unet_target: try_filter_state_dict(sd, guess.unet_key_prefix),
             guess.vae_target: try_filter_state_dict(sd, guess.vae_key_prefix)}
    sd = guess.process_clip_state_dict(sd)
    for k, v in clip_target.items():
        parts[v] = try_filter_state_dict(sd, [k + "."])
    ignored = sorted(sd)   # SDXL.process_clip_state_dict filters (filter_keys=True): the markers are dropped there
    assert ignored == [], ignored[:10]
    print(f"  split: {({k: len(v) for k, v in parts.items()})}, ignore {ignored}")
    with torch.device("meta"):
        unet = IntegratedUNet2DConditionModel.from_config(guess.unet_config)   # loader.py:366
    same_shapes(f"UNet ({classes} IntegratedUNet2DConditionModel from Neo's config)",
                {k: tuple(v.shape) for k, v in parts[guess.unet_target].items()}, shapes_of(unet))
    if cn_shapes:
        csd = meta_sd(cn_shapes)
        # modules_forge/supported_controlnet.py:156-160
        ccfg = model_config_from_unet(csd, CN_P, True)
        c = dict(ccfg.unet_config)
        assert all(c.get(k) == guess.unet_config.get(k) for k in CFG_KEYS), \
            {k: (c.get(k), guess.unet_config.get(k)) for k in CFG_KEYS if c.get(k) != guess.unet_config.get(k)}
        c.pop("out_channels")
        c["hint_channels"] = cn_shapes[CN_P + "input_hint_block.0.weight"][1]
        hint_width = cn_shapes[CN_P + "input_hint_block.0.weight"][0]
        if "hint_width" in cldm.ControlNet.__init__.__code__.co_varnames:   # Neo's class (supported_controlnet.py:160)
            c["hint_width"] = hint_width
        with torch.device("meta"):
            net = cldm.ControlNet(**c)
        assert net.input_hint_block[0].weight.shape[0] == hint_width
        print(f"Neo ControlNet: detected as {type(ccfg).__name__} with the checkpoint's UNet config (hint_width {hint_width})")
        same_shapes(f"ControlNet ({classes} cldm.ControlNet from Neo's config)", cn_shapes, shapes_of(net, CN_P))
        check_zero_convs(shapes, cn_shapes)


def check_zero_convs(shapes, cn_shapes):
    """One control per UNet input block (plus the middle one), each with that block's output channels."""
    n_in = len({k.split(".")[3] for k in shapes if k.startswith(UNET_P + "input_blocks.")})
    zc = sorted({int(k.split(".")[2]) for k in cn_shapes if k.startswith(CN_P + "zero_convs.")})
    assert zc == list(range(n_in)), (zc, n_in)
    assert CN_P + "middle_block_out.0.weight" in cn_shapes
    print(f"  ControlNet: {len(zc)} zero convolutions (= UNet input blocks) + middle_block_out")


def main():
    shapes = header_shapes(a.ckpt)
    cn_shapes = header_shapes(a.controlnet) if a.controlnet else None
    if a.classic:
        check_classic(a.classic, shapes, cn_shapes)
    else:
        check_neo(a.neo, a.forge, shapes, cn_shapes)
    print("all checks passed")


if __name__ == "__main__":
    main()
