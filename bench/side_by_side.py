"""5. This extension against Tiled Diffusion's DemoFusion mode in the real WebUI harness, same request.

Needs the A1111 harness (docs/TESTING.md, "Harnesses") with Tiled Diffusion exported into webui/extensions/
(pkuliyi2015/multidiffusion-upscaler-for-automatic1111, fetched, never committed). Starts its own API server
with this checkout and the test probe (which counts every UNet call of both extensions).
"""
import argparse
import pathlib
import statistics
import sys
import threading
import time

from common import ROOT, table, write_section

sys.path.insert(0, str(ROOT / "tests" / "webui"))
from hosts import HOSTS  # noqa: E402
from servers import start, stop, unlink_all  # noqa: E402
from webui_client import WebUI, plain_request  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--size", type=int, default=128, help="base width and height (px)")
ap.add_argument("--steps", type=int, default=8)
ap.add_argument("--repeats", type=int, default=3)
ap.add_argument("--port", type=int, default=7875)
a = ap.parse_args()

host = HOSTS["a1111"]
TD = host.webui_dir / "extensions" / "multidiffusion-upscaler-for-automatic1111"
if not TD.exists():
    sys.exit(f"Tiled Diffusion is not in {TD}: export it there first (see this file's docstring)")
# this checkout and the test probes linked as the suite's servers have them (the probe counts every UNet call)
start(host, a.port, "sd1", False, host.servers["ui"].folder)
pid = int((host.root / "run" / f"webui-{a.port}.pid").read_text())
ui = WebUI(f"http://127.0.0.1:{a.port}", host, "sd1")


def rss() -> int:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def measure(payload):
    """(seconds, peak RSS above the idle server in bytes, UNet calls, UNet rows) of one request."""
    base, peak, stop = rss(), [0], threading.Event()

    def watch():
        while not stop.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(0.01)
    t = threading.Thread(target=watch)
    t.start()
    t0 = time.perf_counter()
    status, r = ui.txt2img(payload)
    seconds = time.perf_counter() - t0
    stop.set()
    t.join()
    assert status == 200, r
    calls = ui.get("/dfprobe/calls")
    return seconds, peak[0] - base, len(calls), sum(c["x"][0] for c in calls)


def ours(scale, speed="Exact"):
    """Exact: full-strength phases as Tiled Diffusion's; Fast: its preset (relay 0.6, Lanczos, region-wise noise,
    global cut-off)."""
    exact = {"phase_denoise": 1.0} if speed == "Exact" else {}
    return {"demofusion_ext": {"args": [{"enabled": True, "scale": scale, "stride": 0.5, "view_batch_size": 4,
                                         "sigma": 0.8, "speed": speed, **exact}]}}


def theirs(scale):
    # enabled, method, keep size, window (latent), overlap, window batch, scale, noise inversion x5,
    # ControlNet on CPU, jitter, c1, c2, c3, gaussian filter, substage strength, sigma (halved inside), global batch, mixture
    w = a.size // 8
    return {"demofusion": {"args": [True, "DemoFusion", False, w, w // 2, 4, scale, False, 10, 1, 1, 64, False,
                                    True, 3, 1, 1, True, 1.0, 1.6, 4, False]}}


try:
    rows = []
    for scale in (2, 3):
        runs = {"Exact": [], "Fast": [], "Tiled Diffusion": []}
        variants = (("Exact", ours(scale)), ("Fast", ours(scale, "Fast")), ("Tiled Diffusion", theirs(scale)))
        for i in range(a.repeats + 1):                   # the first round warms up; alternate the order
            for name, scripts in variants[:: 1 if i % 2 else -1]:
                payload = plain_request(width=a.size, height=a.size, steps=a.steps,
                                        alwayson_scripts=dict(scripts, dfprobe={"args": [True]}))
                m = measure(payload)
                if i:
                    runs[name].append(m)
        med = {k: [statistics.median(x[j] for x in v) for j in range(4)] for k, v in runs.items()}
        o, f, t = med["Exact"], med["Fast"], med["Tiled Diffusion"]
        rows.append([scale, f"{o[0]:.2f} / {f[0]:.2f} / {t[0]:.2f}", f"{o[0] / t[0]:.2f}", f"{f[0] / t[0]:.2f}",
                     f"{o[1] / 2**20:.0f} / {f[1] / 2**20:.0f} / {t[1] / 2**20:.0f}", f"{o[1] / max(t[1], 1):.2f}",
                     f"{o[2]:.0f} / {f[2]:.0f} / {t[2]:.0f}", f"{o[3]:.0f} / {f[3]:.0f} / {t[3]:.0f}"])
    write_section("5. Side by side with Tiled Diffusion's DemoFusion mode", table(
        ["scale", "seconds (Exact / Fast / TD)", "Exact / TD", "Fast / TD",
         "peak RSS MiB above idle (Exact / Fast / TD)", "memory Exact / TD", "UNet calls (Exact / Fast / TD)",
         "UNet rows (Exact / Fast / TD)"], rows) + f"""

Real WebUI v1.10.1 harness, tiny SD1 model, CPU, txt2img {a.size}x{a.size}, Euler, {a.steps} steps, CFG 7, seed 1234;
both extensions installed side by side (keys `demofusion_ext` and `demofusion`). Same window (the base latent),
half-window overlap, 4 views per call, jitter on, cosine scales 3/1/1, sigma 0.8, full-strength phases (Fast:
its preset, docs/ALGORITHM.md section 7). Goal: Fast at most 0.65 of Tiled Diffusion's time at 3x.
Medians of {a.repeats} alternating runs after one warm-up each. UNet calls and rows counted by the test probe
(`tests/webui/cn_probe`) at the UNet, phase 1 included. Tiled Diffusion commit 22798f6.""")
finally:
    stop(host, a.port)
    unlink_all()
