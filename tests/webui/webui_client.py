"""A real WebUI (the harness in ../shared/webui-harness) with this checkout installed, over HTTP.

DEMOFUSION_WEBUI_SD1 / DEMOFUSION_WEBUI_SDXL: URLs of running servers to use instead of starting them.
WEBUI_HARNESS: the harness build (default ~/webui-harness). Without either, every WebUI test skips.
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
MODELS = {"sd1": ("tiny-sd15.safetensors", 7871), "sdxl": ("tiny-sdxl.safetensors", 7872)}


class WebUI:
    def __init__(self, url, kind, log=None):
        self.url, self.kind, self.log = url.rstrip("/"), kind, log
        self.baseline = None

    def call(self, method, path, payload=None, timeout=900):
        data = json.dumps(payload).encode() if payload is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as e:
            body = e.read()
            return e.code, json.loads(body) if body else {}

    def txt2img(self, payload):
        return self.call("POST", "/sdapi/v1/txt2img", payload)

    def get(self, path):
        return self.call("GET", path)[1]


def images(response):
    from PIL import Image
    return [Image.open(io.BytesIO(base64.b64decode(b))) for b in response["images"]]


def plain_request(**kw):
    req = {"prompt": "a photo of a cat, (detailed:1.2)", "negative_prompt": "blurry", "seed": 1234,
           "steps": 4, "width": 128, "height": 128, "sampler_name": "Euler", "cfg_scale": 7,
           "save_images": False, "send_images": True}
    req.update(kw)
    return req


def demofusion(args, **kw):
    return plain_request(alwayson_scripts={"demofusion_ext": {"args": args}}, **kw)


def harness_missing():
    if not (HARNESS / "webui" / "launch.py").exists() or not (BIN / "start_webui.sh").exists():
        return (f"no WebUI harness: build it with {BIN / 'setup.sh'} (see shared/webui-harness/README.md), "
                f"or point DEMOFUSION_WEBUI_SD1/SDXL at running servers")
    return None


def _serve(kind, port, env_name, ui_mode=False):
    """Yield a WebUI for `kind`: the server named by $env_name, or a harness server started here."""
    url = os.environ.get(env_name)
    started = None
    if not url:
        missing = harness_missing()
        if missing:
            pytest.skip(missing)
        env = dict(os.environ, EXTENSION=str(REPO), PORT=str(port),
                   CKPT=str(HARNESS / "webui" / "models" / "Stable-diffusion" / MODELS[kind][0]))
        extensions = HARNESS / "webui" / "extensions"
        for link in extensions.iterdir():       # other links to this project (an interrupted run, another checkout)
            if link.is_symlink() and link.name != REPO.name and (link.resolve() / "demofusion_ext").is_dir():
                link.unlink()
        subprocess.run([str(BIN / "stop_webui.sh"), str(port)], env=env, capture_output=True)
        out = subprocess.run([str(BIN / "start_webui.sh")] + (["--ui"] if ui_mode else []), env=env,
                             capture_output=True, text=True)
        if out.returncode:
            pytest.fail(f"harness WebUI did not start: {out.stdout[-2000:]} {out.stderr[-2000:]}")
        url, started = f"http://127.0.0.1:{port}", (port, env)
    ui = WebUI(url, kind, HARNESS / "run" / f"webui-{started[0]}.log" if started else None)
    status, r = ui.txt2img(plain_request())
    assert status == 200, r
    ui.baseline = r["images"][0]
    yield ui
    if started:
        subprocess.run([str(BIN / "stop_webui.sh"), str(started[0])], env=started[1], capture_output=True)


@pytest.fixture(scope="session", params=["sd1", "sdxl"])
def webui(request):
    """An API-only WebUI with this extension per tiny model; its baseline plain image comes before any DemoFusion run."""
    yield from _serve(request.param, MODELS[request.param][1], f"DEMOFUSION_WEBUI_{request.param.upper()}")


@pytest.fixture(scope="session")
def webui_ui():
    """The SD1 WebUI with its gradio UI (and API): what a browser sees, XYZ plot axes, infotext paste."""
    yield from _serve("sd1", 7870, "DEMOFUSION_WEBUI_UI", ui_mode=True)


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


def txt2img_interrupted_in_phase_2(ui, payload, timeout=120, button="interrupt"):
    """Run a request and press Interrupt (or Skip) once its second phase has started; returns
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
        if s["job_count"] > 0 and s["job_no"] >= 1:
            break
        time.sleep(0.05)
    t0 = time.time()
    ui.call("POST", f"/sdapi/v1/{button}")
    t.join()
    return result["r"], time.time() - t0
