"""4. Peak memory of a whole generation at 2x, 3x, 4x (tiny UNet), of tiled decoding as the output grows, of the
WebUI's kept phase images, and of one call's per-view ControlNet hints, before and after (--before, a git revision).

Each measurement runs in a fresh child process: peak RSS (ru_maxrss) minus the RSS once the model is loaded and
warmed up, i.e. what the generation itself adds; the latent and image buffers are listed beside it. Children run
with glibc told to return every freed block over 64 KiB at once (MALLOC_MMAP_THRESHOLD_), so the RSS peak is the
peak of live tensors, as a GPU allocator's peak statistic would count it; glibc's default, which keeps freed blocks
mapped, is measured beside it for the default view batch.
"""
import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time

import torch
import torch.nn.functional as F

from common import ROOT, table, write_section

ap = argparse.ArgumentParser()
ap.add_argument("--base", type=int, default=32, help="base latent size (cells) for generations")
ap.add_argument("--steps", type=int, default=3)
ap.add_argument("--tile", type=int, default=32, help="decoder tile (cells)")
ap.add_argument("--before", default="818b928", help="git revision whose engine is the 'before' of the hint figures")
ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
ap.add_argument("--tree", default=None, help=argparse.SUPPRESS)
a = ap.parse_args()


def rss_kib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])


# (a) "Also return the image of each earlier phase": the WebUI adapter keeps each finished phase's decoded images
# until postprocess. Before (818b928) it kept the decoder's float32 [B, 3, H, W] in [-1, 1]; now it keeps
# to_uint8 of it. demofusion_ext/hosts/pictures.py imports the WebUI's `modules`, so its to_uint8 is copied here.
MODELS = {"SDXL": 128, "SD1.5": 64}        # base latent cells (1024 px, 512 px)
PHASE_SCALE = 4
PHASE_IMAGES_BEFORE = "818b928"             # the representation reproduced as "before" (not --before's engine)


def to_uint8(decoded: torch.Tensor) -> torch.Tensor:
    """demofusion_ext.hosts.pictures.to_uint8, verbatim."""
    return ((decoded.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu()


def kept_bytes(model, batch, mode):
    """Bytes of the phase images held while the last phase is decoded: phases 1..S-1 at k x the base size."""
    pixels = sum((k * MODELS[model] * 8) ** 2 for k in range(1, PHASE_SCALE))
    return {"none": 0, "before": batch * 3 * pixels * 4, "after": batch * pixels * 3}[mode]


def reset_peak():
    with open("/proc/self/clear_refs", "w") as f:     # VmHWM := VmRSS (Linux >= 4.0)
        f.write("5")


def phase_images_child(model, mode, batch):
    """The adapter's decode sequence with the real tiled decoder (default 1024 px tiles, the adapter's overlap)
    and a stand-in VAE (nearest 8x upsampling: no activations of its own), keeping each earlier phase's images
    as before/after, then decoding the last phase; peaks added during the earlier phases and the last decode."""
    from demofusion_ext import DemoFusionSettings, tiled_decode
    tile = DemoFusionSettings().decode_tile_size // 8
    vae = lambda z: F.interpolate(z[:, :3], scale_factor=8, mode="nearest").tanh_()      # noqa: E731
    decode = lambda z: tiled_decode(vae, z, tile=tile, overlap=max(2, tile // 4),       # noqa: E731
                                    out_device=torch.device("cpu"), out_dtype=torch.float32)
    decode(torch.randn(1, 4, tile + 8, tile + 8))
    before = rss_kib("VmRSS")
    reset_peak()
    kept, base = [], MODELS[model]
    for k in range(1, PHASE_SCALE):
        decoded = decode(torch.randn(batch, 4, k * base, k * base))
        if mode == "before":
            kept.append(decoded)
        elif mode == "after":
            kept.append(to_uint8(decoded))
        del decoded
    phases = rss_kib("VmHWM") - before
    held = sum(t.numel() * t.element_size() for t in kept)
    assert held == kept_bytes(model, batch, mode), held
    reset_peak()
    final = decode(torch.randn(batch, 4, PHASE_SCALE * base, PHASE_SCALE * base))
    return {"phases": phases, "final": rss_kib("VmHWM") - before, "held": held, "final_bytes": final.nbytes}


# (b) one call's ControlNet hints (controlnet_hints.view_hints) for SDXL at 4x: the last phase's 512 x 512 latent,
# hint 1 x 3 x 4096 x 4096, 128-cell windows at the default stride with jitter, dilation 4, cond + uncond rows.
HINT_PHASE, HINT_WINDOW, HINT_ROWS = 512, 128, 2


def hint_batches(layout):
    """name -> 16 views: one mixing 8 local windows that reach past the border with 8 dilated global views, and
    the engine's own batches that hold border windows (views in the engine's order, 16 per call)."""
    n = HINT_PHASE

    def outside(v):
        return v.top < 0 or v.left < 0 or v.top + v.height > n or v.left + v.width > n
    border = [v for v in layout.local if outside(v)]
    work = list(layout.local) + list(layout.dilated)
    calls = {f"engine call {i // 16 + 1}": work[i:i + 16] for i in range(0, len(work), 16)}
    pick = [border[round(i * (len(border) - 1) / 7)] for i in range(8)]
    out = {"8 border windows + 8 global views": pick + list(layout.dilated[:8])}
    for name in ("engine call 1", "engine call 4"):
        views = calls[name]
        out[f"{name}: {sum(v.kind == 'local' for v in views)} local ({sum(outside(v) for v in views)} past the "
            f"border), {sum(v.kind == 'global' for v in views)} global"] = views
    return out


def hint_layout():
    """The views of the phase's first evaluation, as PhaseRunner.evaluation() draws them (seed 0, phase 4)."""
    from demofusion_ext import jitter_rng, make_layout
    from demofusion_ext.views import size_multiple
    window = (HINT_WINDOW, HINT_WINDOW)
    return make_layout(HINT_PHASE, HINT_PHASE, window, 0.5, 4, jitter_rng(0, 4, 0), multiple=size_multiple(window))


def hints_child(which):
    if a.tree:
        sys.path.insert(0, a.tree)      # the 'before' engine (also on PYTHONPATH, but common.py put ROOT first)
    import demofusion_ext
    from demofusion_ext.controlnet_hints import view_hints
    where = os.path.dirname(os.path.dirname(demofusion_ext.__file__))
    assert os.path.samefile(where, a.tree or ROOT), where
    layout = hint_layout()
    views = list(hint_batches(layout).values())[int(which)]
    torch.manual_seed(0)
    full = torch.rand(1, 3, HINT_PHASE * 8, HINT_PHASE * 8)      # the phase hint: CPU float32 in both versions
    view_hints(full, layout.dilated[:1], HINT_ROWS)                  # warm-up
    before = rss_kib("VmRSS")
    reset_peak()
    t0 = time.perf_counter()
    out = view_hints(full, views, HINT_ROWS)
    seconds = time.perf_counter() - t0
    added = rss_kib("VmHWM") - before
    return {"added": added, "out": out.nbytes, "full": full.nbytes, "seconds": seconds,
            "sha": hashlib.sha256(out.contiguous().numpy()).hexdigest()[:16]}


def child(kind, value):
    torch.set_num_threads(2)
    with torch.no_grad():
        if kind.startswith("phase-images"):
            _, model, mode = kind.split("/")
            return phase_images_child(model, mode, int(value))
        if kind == "hints":
            return hints_child(value)
        if kind.startswith("generate"):
            from common import eps_predict, tiny_unet
            from demofusion_ext import DemoFusionSettings, run_demofusion
            predict = eps_predict(tiny_unet(), torch.randn(1, 8, 32))
            run_demofusion(predict, (1, 4, a.base, a.base), DemoFusionSettings(scale=1), steps=1, seeds=[0])
            before = rss_kib("VmRSS")
            batch = int(kind.split("/")[1])
            out = run_demofusion(predict, (1, 4, a.base, a.base), DemoFusionSettings(scale=value, view_batch_size=batch),
                                 steps=a.steps, seeds=[0])
            buffers = 4 * out[-1].numel() * 4 // 1024       # z, noise, state and result at the final size
        else:
            from common import tiny_vae
            from demofusion_ext import tiled_decode
            vae = tiny_vae()
            decode = lambda z: vae.decode(z).sample        # noqa: E731
            decode(torch.randn(1, 4, a.tile, a.tile))
            before = rss_kib("VmRSS")
            z = torch.randn(1, 4, int(value), int(value))
            tiled_decode(decode, z, a.tile, a.tile // 4)
            buffers = (3 + 1 + 3) * int(value) ** 2 * 64 * 4 // 1024   # value, weight and result images
    return {"added": rss_kib("VmHWM") - before, "buffers": buffers}


if a.child:
    kind, value = a.child.split(":")
    print(json.dumps(child(kind, value if kind == "hints" else float(value))))
    sys.exit(0)


LIVE = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}


def run(kind, value, allocator=LIVE, tree=None):
    env = {k: v for k, v in os.environ.items() if k not in LIVE} | allocator
    if tree:
        env["PYTHONPATH"] = tree
    out = subprocess.run([sys.executable, __file__, "--base", str(a.base), "--steps", str(a.steps),
                          "--tile", str(a.tile), "--child", f"{kind}:{value}"] + (["--tree", tree] if tree else []),
                         capture_output=True, text=True, env=env)
    if out.returncode:
        sys.exit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


gen = {(b, s): run(f"generate/{b}", s) for b in (16, 8) for s in (2, 3, 4)}
cached = {s: run("generate/16", s, allocator={}) for s in (2, 4)}
dec = {n: run("decode", n) for n in (a.tile * 2, a.tile * 4, a.tile * 8)}
mib = lambda kib: f"{kib / 1024:.1f}"                      # noqa: E731
rows = [[f"generation {s}x, view batch {b}", mib(m["added"]), mib(m["buffers"]), mib(m["added"] - m["buffers"])]
        for (b, s), m in gen.items()]
rows += [[f"generation {s}x, view batch 16, glibc default allocator", mib(m["added"]), mib(m["buffers"]),
          mib(m["added"] - m["buffers"])] for s, m in cached.items()]
rows += [[f"tiled decode {int(n) * 8} px", mib(m["added"]), mib(m["buffers"]), mib(m["added"] - m["buffers"])]
         for n, m in dec.items()]


def working(m):
    return m["added"] - m["buffers"]


# (a) kept phase images: SDXL and SD1.5 at 4x, batch 4
PHASE_BATCH = 4
phase_img = {(model, mode): run(f"phase-images/{model}/{mode}", PHASE_BATCH)
             for model in MODELS for mode in ("none", "before", "after")}
# (b) one call's ControlNet hints, the engine of --before against this tree's
with tempfile.TemporaryDirectory() as old:
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", a.before, "demofusion_ext"],
                             capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(old, filter="data")
    names = list(hint_batches(hint_layout()))
    hints = {(i, when): run("hints", i, tree=old if when == "before" else None)
             for i in range(len(names)) for when in ("before", "after")}


phase_rows = []
for model in MODELS:
    size = PHASE_SCALE * MODELS[model] * 8
    for mode, label in (("none", "off"), ("before", f"{PHASE_IMAGES_BEFORE}: float32 CHW"), ("after", "now: uint8 HWC")):
        m = phase_img[model, mode]
        phase_rows.append([f"{model} {size} px ({PHASE_SCALE}x), {label}", f"{m['held'] / 2**20:.0f}",
                           mib(m["phases"]), mib(m["final"]), mib(m["final"] - phase_img[model, "none"]["final"])])
sdxl_kept = phase_img["SDXL", "before"]["held"], phase_img["SDXL", "after"]["held"]
uint8_extra_phases = (phase_img["SDXL", "after"]["phases"] - phase_img["SDXL", "before"]["phases"]) / 1024
below_last = ("that stays below the last decode's peak" if all(
    phase_img[m, "after"]["phases"] < phase_img[m, "after"]["final"] for m in MODELS)
    else "that is ABOVE the last decode's peak")


def sizes(model):
    return ", ".join(str(k * MODELS[model] * 8) for k in range(1, PHASE_SCALE))


hint_rows = []
for i, name in enumerate(names):
    old_, new_ = hints[i, "before"], hints[i, "after"]
    hint_rows.append([name, mib(old_["added"]), mib(new_["added"]), f"{new_['out'] / 2**20:.0f}",
                      f"{old_['seconds']:.2f} / {new_['seconds']:.2f}", "yes" if old_["sha"] == new_["sha"] else "NO"])

ratio = {b: working(gen[b, 4]) / max(1, working(gen[b, 2])) for b in (16, 8)}
ratio_cached = working(cached[4]) / max(1, working(cached[2]))
write_section("4. Memory", table(["what", "peak added MiB", "latent/image buffers MiB", "working memory MiB"], rows) + f"""

Tiny UNet, base latent {a.base}x{a.base} ({a.base * 8} px), {a.steps} steps; decoding with the tiny VAE in {a.tile}-cell
tiles. Working memory = peak added minus the buffers that necessarily grow with the output. Target: at 4x at most
1.5x the 2x peak apart from those buffers; measured ratio {ratio[16]:.2f} with the default view batch 16 and
{ratio[8]:.2f} with view batch 8 (peak of live memory: glibc returns freed blocks at once). With glibc's default
allocator the RSS ratio is {ratio_cached:.2f}: it keeps freed blocks mapped, so RSS also counts memory no tensor holds.
Views have the base size whatever the scale, so what grows is the number of views per call: at 2x a step has 13
views, below the batch of 16, so its calls are smaller than the full 16-view calls of 3x and 4x; with a batch every
scale fills (8), the peaks match. Decoding holds one tile's activations at a time: its working memory stays flat
while the output grows.

### Phase images kept by the WebUI adapter ("Also return the image of each earlier phase")

""" + table(["output, batch 4, phase images", "kept MiB", "peak added, earlier phases' decodes MiB",
             "peak added, last decode MiB", "last decode's peak above no phase images MiB"], phase_rows) + f"""

The adapter keeps each earlier phase's decoded images until postprocess: phases 1..{PHASE_SCALE - 1} of {PHASE_SCALE}x,
{sizes("SDXL")} px for SDXL and {sizes("SD1.5")} px for SD1.5. Before ({PHASE_IMAGES_BEFORE}) it kept the decoder's float32
[B, 3, H, W]; now `to_uint8` (hosts/pictures.py, copied here) keeps uint8 [B, H, W, 3]: 4x smaller (kept MiB, exact
arithmetic, checked against the tensors held: {sdxl_kept[0] / 2**20:.0f} -> {sdxl_kept[1] / 2**20:.0f} MiB for SDXL
at 4x, batch 4). Peaks measured in fresh child processes with the real tiled decoder (1024 px tiles, the adapter's
overlap) and a stand-in VAE without activations (nearest 8x upsampling), so they are the decoder's buffers plus
what is kept. The last decode (value, weight and result images) is where this part of a generation peaks, and
the kept images add to it exactly (last column: the run without phase images subtracted). During the earlier
phases' decodes the peak is {uint8_extra_phases:+.0f} MiB now against before (SDXL): `to_uint8` works out of place,
so converting the {sizes("SDXL").split(", ")[-1]} px phase briefly holds its float32 decode and two float32
temporaries (`clamp`, then `+ 1`, ...), 3x that phase's float32 images; {below_last}. The batch count multiplies
the kept images: the record keeps every batch's phase images until postprocess.

### ControlNet hints of one UNet call (`controlnet_hints.view_hints`)

""" + table(["call: 16 views of 128 x 128 cells, 2 rows each", f"peak added, {a.before} MiB", "peak added, now MiB",
             "the call's hints MiB", f"seconds, {a.before} / now", "same hints"], hint_rows) + f"""

SDXL at 4x: the last phase's {HINT_PHASE} x {HINT_PHASE} latent and its ControlNet hint 1 x 3 x {HINT_PHASE * 8} x
{HINT_PHASE * 8} ({hints[0, "after"]["full"] / 2**20:.0f} MiB, float32 on the CPU in both versions); 128-cell windows at
stride 0.5 with jitter and dilation-4 global views, drawn by make_layout with jitter_rng as the phase runner draws
them; rows = 2 (cond + uncond). One call per fresh child process, the before one importing demofusion_ext from
`git archive {a.before}` (on PYTHONPATH); peak added = VmHWM (reset after a warm-up call) minus VmRSS before the
call, glibc returning freed blocks at once. Before, each view was extracted, padding a copy of the whole phase
hint when the view reached past the border (a jittered border window, or a global view with top/left padding),
then repeated for the rows, and the list concatenated: list and result are both alive at the concatenation, 2x
the call's hints. Each border view's padded copy (just over the phase hint's size) was freed before the next
view, so it shows in the time rather than the peak. Now one tensor of the call's size is allocated and every
crop is copied straight into it: the peak is the call's hints, whatever the views, and the hints are the same
bytes (sha256). Seconds are wall time on a shared 2-core machine: only the ratio is meant to carry over. The
global views of this layout need no padding (128-cell sub-grids of 512 cells); they do at fractional scales.
Before, the phase hint also stayed on the CPU in float32 and each call's hints were moved to the device after
this; now they are cut on the hint's device in its dtype.""")
