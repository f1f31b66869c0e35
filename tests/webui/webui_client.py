"""A real WebUI with this checkout installed, over HTTP: A1111 v1.10.1 (../shared/webui-harness, tiny SD1 and
SDXL models) and Forge 2 (../shared/forge-harness, its Forge-shaped tiny SD1 and SDXL models).

DEMOFUSION_WEBUI_SD1 / _SDXL / _FORGE / _FORGE_SDXL: URLs of running servers to use instead of starting them.
WEBUI_HARNESS / FORGE_HARNESS: the harness builds (default ~/webui-harness, ~/forge-harness). A host whose
harness is missing (and no URL given) skips its tests, naming the build command.
"""
import base64
import io
import json
import os
import pathlib
import subprocess
import urllib.error
import urllib.request

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
HARNESS = pathlib.Path(os.environ.get("WEBUI_HARNESS", pathlib.Path.home() / "webui-harness"))
BIN = REPO.parent / "shared" / "webui-harness" / "bin"
FORGE_HARNESS = pathlib.Path(os.environ.get("FORGE_HARNESS", pathlib.Path.home() / "forge-harness"))
FORGE_BIN = REPO.parent / "shared" / "forge-harness" / "bin"
MODELS = {"sd1": ("tiny-sd15.safetensors", 7871), "sdxl": ("tiny-sdxl.safetensors", 7872),
          "forge": ("tiny-forge-sd15.safetensors", 7883), "forge-sdxl": ("tiny-forge-sdxl.safetensors", 7885)}


class Host:
    """Where a host's harness lives and how it starts: the WebUI tree, its scripts and its log names."""

    def __init__(self, name, build, bin_dir, tree, start, stop, log):
        self.name, self.build, self.bin, self.tree = name, build, bin_dir, build / tree
        self.start, self.stop, self.log = bin_dir / start, bin_dir / stop, log

    def missing(self):
        if not (self.tree / "launch.py").exists() or not self.start.exists():
            return (f"no {self.name} harness: build it with {self.bin / 'setup.sh'} (see its README), "
                    f"or point DEMOFUSION_WEBUI_* at running servers")
        return None


A1111 = Host("A1111 WebUI", HARNESS, BIN, "webui", "start_webui.sh", "stop_webui.sh", "webui-{port}.log")
FORGE = Host("Forge", FORGE_HARNESS, FORGE_BIN, "forge", "start_forge.sh", "stop_forge.sh", "forge-{port}.log")


class WebUI:
    def __init__(self, url, kind, log=None):
        self.url, self.kind, self.log = url.rstrip("/"), kind, log
        self.host = "forge" if kind.startswith("forge") else "a1111"
        self.sdxl = kind.endswith("sdxl")
        self.baseline = None

    @property
    def outputs(self):
        """The server's output folder (known for a harness server started here)."""
        return self.log.parents[1] / ("forge" if self.host == "forge" else "webui") / "outputs"

    def call(self, method, path, payload=None, timeout=900):
        data = json.dumps(payload).encode() if payload is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as e:
            body = e.read()
            body = json.loads(body) if body else {}
            if isinstance(body, dict) and "errors" not in body:
                body["errors"] = body.get("message", "")      # Forge names the error text "message"
            return e.code, body

    def txt2img(self, payload):
        return self.call("POST", "/sdapi/v1/txt2img", payload)

    def get(self, path):
        return self.call("GET", path)[1]


def images(response):
    from PIL import Image
    return [Image.open(io.BytesIO(base64.b64decode(b))) for b in response["images"]]


def plain_request(**kw):
    req = {"prompt": "a photo of a cat, (detailed:1.2)", "negative_prompt": "blurry", "seed": 1234,
           "steps": 4, "width": 128, "height": 128, "sampler_name": "Euler", "scheduler": "Automatic", "cfg_scale": 7,
           "save_images": False, "send_images": True}
    req.update(kw)
    return req


def small(webui, size=128):
    """A square base of `size` (Forge: 64, its tiny model being full width and 7-10x slower) and its 2x size."""
    side = 64 if webui.host == "forge" else size
    return {"width": side, "height": side}, (2 * side, 2 * side)


def demofusion(args, **kw):
    return plain_request(alwayson_scripts={"demofusion_ext": {"args": args}}, **kw)


def controlnet_request(df_args, units, probe=None, **kw):
    """A request with ControlNet units (None: no ControlNet arguments) and, when named, a probe script enabled;
    `df_args` None: DemoFusion off."""
    req = demofusion(df_args, **kw) if df_args is not None else plain_request(**kw)
    req.setdefault("alwayson_scripts", {})
    if units is not None:
        req["alwayson_scripts"]["ControlNet"] = {"args": units}
    if probe:
        req["alwayson_scripts"][probe] = {"args": [True]}
    return req


def xyz_axis_choices(webui):
    """The X/Y/Z plot's axis names in txt2img, whose indices its script arguments take."""
    [xyz] = [s for s in webui.get("/sdapi/v1/script-info") if s["name"] == "x/y/z plot" and not s["is_img2img"]]
    return xyz["args"][0]["choices"]


def picture(size=(128, 128)):
    """A smooth test picture (base64 PNG): colour gradients with a disc, so similarity measures mean something."""
    import numpy as np
    from PIL import Image
    w, h = size
    y, x = np.mgrid[0:h, 0:w] / max(w, h)
    rgb = np.stack([x, y, 1 - x * y], -1)
    rgb[(x - 0.5) ** 2 + (y - 0.5) ** 2 < 0.08] = [0.9, 0.2, 0.1]
    buf = io.BytesIO()
    Image.fromarray((rgb * 255).astype(np.uint8)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def harness_missing():
    return A1111.missing()


def has(info, key, text):
    """`key: text` in an infotext; the WebUI quotes a value only when it holds a comma or colon."""
    return f"{key}: {text}," in info or f'{key}: "{text}"' in info


def phase_log_lines(webui, phase=2):
    """The engine's report lines for `phase` in the server log, oldest first."""
    if webui.log is None:
        pytest.skip("server log unknown for a server given by URL")
    return [ln for ln in webui.log.read_text().splitlines() if ln.startswith(f"[DemoFusion] phase {phase} at ")]


def _serve(kind, port, env_name, ui_mode=False):
    """Yield a WebUI for `kind`: the server named by $env_name, or a harness server started here."""
    host = FORGE if kind.startswith("forge") else A1111
    url = os.environ.get(env_name)
    started = None
    if not url:
        missing = host.missing()
        if missing:
            pytest.skip(missing)
        env = dict(os.environ, EXTENSION=str(REPO), PORT=str(port),
                   CKPT=str(host.tree / "models" / "Stable-diffusion" / MODELS[kind][0]))
        for link in (host.tree / "extensions").iterdir():   # other links to this project (an interrupted run, another checkout)
            if link.is_symlink() and link.name != REPO.name and (link.resolve() / "demofusion_ext").is_dir():
                link.unlink()
        probes = {"zz-dffault": "fault_probe",               # test-only: makes a chosen phase fail on request
                  "zz-dfunet": "unet_probe"}                 # test-only: records what the UNet itself received
        if host is A1111:
            probes["zz-dfapply"] = "apply_probe"                 # another extension's apply_model hook, a probe
        for name, folder in probes.items():
            if not (host.tree / "extensions" / name).is_symlink():
                (host.tree / "extensions" / name).symlink_to(REPO / "tests" / "webui" / folder)
        subprocess.run([str(host.stop), str(port)], env=env, capture_output=True)
        out = subprocess.run([str(host.start)] + (["--ui"] if ui_mode else []), env=env, capture_output=True, text=True)
        if out.returncode:
            pytest.fail(f"harness {host.name} did not start: {out.stdout[-2000:]} {out.stderr[-2000:]}")
        url, started = f"http://127.0.0.1:{port}", (port, env)
    ui = WebUI(url, kind, host.build / "run" / host.log.format(port=started[0]) if started else None)
    status, r = ui.txt2img(plain_request())
    assert status == 200, r
    ui.baseline = r["images"][0]
    yield ui
    if started:
        subprocess.run([str(host.stop), str(started[0])], env=started[1], capture_output=True)


@pytest.fixture(scope="session", params=["sd1", "sdxl", "forge", "forge-sdxl"])
def webui(request):
    """An API-only WebUI with this extension per host and tiny model (A1111: SD1, SDXL; Forge: SD1, SDXL);
    its baseline plain image comes before any DemoFusion run."""
    env_name = "DEMOFUSION_WEBUI_" + request.param.upper().replace("-", "_")
    yield from _serve(request.param, MODELS[request.param][1], env_name)


@pytest.fixture(scope="session", params=["sd1", "forge"])
def webui_ui(request):
    """The SD1 WebUI with its gradio UI (and API) per host: what a browser sees, XYZ plot axes, infotext paste."""
    port = 7870 if request.param == "sd1" else 7884
    yield from _serve(request.param, port, "DEMOFUSION_WEBUI_UI" + ("_FORGE" if request.param == "forge" else ""),
                      ui_mode=True)


def txt2img_polling(ui, payload, on_progress, path="/sdapi/v1/progress?skip_current_image=true", interval=0.03):
    """Run a txt2img request while another thread passes each /progress answer to on_progress."""
    import threading
    import time
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            on_progress(ui.get(path))
            time.sleep(interval)
    t = threading.Thread(target=poll)
    t.start()
    try:
        return ui.txt2img(payload)
    finally:
        stop.set()
        t.join()


def txt2img_interrupted_in_phase_2(ui, payload, timeout=120, button="interrupt", phase=2):
    """Run a request and press Interrupt (or Skip) once its second (or `phase`-th) phase has started; returns
    (response, seconds to stop)."""
    import threading
    import time
    def state():
        return ui.get("/sdapi/v1/progress?skip_current_image=true")["state"]
    result = {}
    t = threading.Thread(target=lambda: result.update(r=ui.txt2img(payload)))
    t.start()
    deadline = time.time() + timeout
    while time.time() < deadline:
        s = state()
        # job_no of the previous request lingers after it ended; job_count is 0 until a new one begins
        if s["job_count"] > 0 and s["job_no"] >= phase - 1:
            break
        time.sleep(0.05)
    t0 = time.time()
    ui.call("POST", f"/sdapi/v1/{button}")
    t.join()
    return result["r"], time.time() - t0
