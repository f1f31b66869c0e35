#!/usr/bin/env python3
"""Write a random-weight SDXL ControlNet that fits the standard-depth tiny SDXL of make_tiny_sdxl.py.

    ~/forge-harness/venv/bin/python tests/hosts/tiny_models/make_tiny_sdxl_controlnet.py --out FILE [--ckpt CKPT]

It REUSES the Forge 2 harness's make_forge_tiny_controlnet.py (not copied): like make_tiny_sdxl.py, it executes that
script's module-level code in a namespace of its own (with a prepared sys.argv) and calls its build() with two names
replaced:
  unet_shapes        -> the UNet shapes of make_tiny_sdxl.STD_UNET (Forge 2's UNet class on the meta device), unless
                        --ckpt names a checkpoint, whose header is then read as the shared maker does
  write_safetensors  -> the shared writer with this maker named in the metadata note
Everything else is the shared maker's: the ControlNet config is the checkpoint's UNet config as Forge 2's
huggingface_guess detects it, the network is Forge 2's cldm.ControlNet on the meta device, the maker checks that
Forge 2 detects the ControlNet file as the same network and that its encoder has exactly the checkpoint's input-block
and middle-block keys and shapes (so every control fits a skip connection), random weights from one generator per
(seed, key), zero convolutions at 0.5x and the hint encoder at 1.8x the fan-in scale (so a unit and its image matter),
canonical header: the same seed gives a byte-identical file. Classic's and Neo's ControlNet detection: check_tiny_sdxl.py.

The shared maker names its output control_<checkpoint name>.safetensors in --out-dir; this wrapper builds into a
temporary folder beside --out and renames, so the bytes do not depend on --out (its metadata says
"for_checkpoint": "tiny-std-sdxl.safetensors" unless --ckpt is given).

The network: 6 levels x 1 res block at 320 channels, input transformer depths [0, 0, 2, 2, 10, 10], ADM 2816 (12 input
blocks, so 12 zero convolutions, plus the middle block's), 3-channel hint. 106.77 M parameters, 203.7 MiB.
"""
import argparse
import importlib.util
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKOUT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
DEFAULT_BIN = os.environ.get("FORGE2_BIN") or os.path.join(os.path.dirname(CHECKOUT), "shared", "forge-harness", "bin")
CKPT_NAME = "tiny-std-sdxl"


def parse():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="the .safetensors file to write")
    ap.add_argument("--ckpt", default=None, help="fit this checkpoint's UNet (default: make_tiny_sdxl.py's STD_UNET)")
    ap.add_argument("--seed", type=int, default=None, help="default: the shared maker's default seed")
    ap.add_argument("--dtype", choices=["fp16", "fp32"], default="fp16")
    ap.add_argument("--forge", default=os.path.join(os.environ.get("FORGE_HARNESS", os.path.expanduser("~/forge-harness")), "forge"),
                    help="Forge 2 work tree (default $FORGE_HARNESS/forge)")
    ap.add_argument("--maker", default=os.path.join(DEFAULT_BIN, "make_forge_tiny_controlnet.py"),
                    help="the shared Forge 2 harness maker to run (default %(default)s)")
    return ap.parse_args()


def std_unet():
    spec = importlib.util.spec_from_file_location("make_tiny_sdxl", os.path.join(HERE, "make_tiny_sdxl.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)   # definitions only: its work happens in main()
    return mod.STD_UNET


def main():
    a = parse()
    out = os.path.abspath(a.out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tiny-cn-", dir=os.path.dirname(out))
    try:
        ckpt = os.path.abspath(a.ckpt) if a.ckpt else os.path.join(tmp, CKPT_NAME + ".safetensors")   # only its name is used
        argv = [a.maker, "--forge", a.forge, "--ckpt", ckpt, "--out-dir", tmp, "--dtype", a.dtype]
        if a.seed is not None:
            argv += ["--seed", str(a.seed)]
        with open(a.maker) as f:
            code = compile(f.read(), a.maker, "exec")
        ns = {"__name__": "make_forge_tiny_controlnet", "__file__": a.maker, "__builtins__": __builtins__}
        saved = sys.argv
        sys.argv = argv
        try:
            exec(code, ns)   # its argparse, its Forge 2 imports (which put the Forge 2 tree on sys.path), its definitions
        finally:
            sys.argv = saved
        for name in ("build", "unet_shapes", "write_safetensors", "UNET_P", "torch"):
            assert name in ns, f"{a.maker} no longer defines {name}: this wrapper needs updating"

        if not a.ckpt:
            from backend.nn.unet import IntegratedUNet2DConditionModel   # Forge 2's class, as make_forge_tiny_sdxl.py uses
            cfg = std_unet()
            with ns["torch"].device("meta"):
                unet = IntegratedUNet2DConditionModel(**cfg)
            shapes = {ns["UNET_P"] + k: tuple(v.shape) for k, v in unet.state_dict().items()}
            ns["unet_shapes"] = lambda _ckpt: dict(shapes)
        shared_write = ns["write_safetensors"]

        def write_safetensors(sd, path, meta_):
            meta_ = dict(meta_)
            meta_["note"] = ("random-weight test ControlNet made by tests/hosts/tiny_models/make_tiny_sdxl_controlnet.py "
                             "through the Forge 2 harness's make_forge_tiny_controlnet.py; NOT a real model")
            return shared_write(sd, path, meta_)

        ns["write_safetensors"] = write_safetensors
        ns["build"](ckpt)
        built = os.path.join(tmp, "control_" + os.path.splitext(os.path.basename(ckpt))[0] + ".safetensors")
        os.replace(built, out)
        print(f"  moved to {out}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
