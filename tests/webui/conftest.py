"""Fixtures that run a real WebUI (the harness in ../shared/webui-harness) with this checkout installed.

DEMOFUSION_WEBUI_SD1 / DEMOFUSION_WEBUI_SDXL: URLs of running servers to use instead of starting them.
WEBUI_HARNESS: the harness build (default ~/webui-harness). Without either, every test here skips.
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
    def __init__(self, url):
        self.url = url.rstrip("/")

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


def _harness_missing():
    if not (HARNESS / "webui" / "launch.py").exists() or not (BIN / "start_webui.sh").exists():
        return (f"no WebUI harness: build it with {BIN / 'setup.sh'} (see shared/webui-harness/README.md), "
                f"or point DEMOFUSION_WEBUI_SD1/SDXL at running servers")
    return None


@pytest.fixture(scope="session", params=["sd1", "sdxl"])
def webui(request):
    """A WebUI with this extension, per tiny model; the baseline plain image is taken before any DemoFusion run."""
    kind = request.param
    url = os.environ.get(f"DEMOFUSION_WEBUI_{kind.upper()}")
    started = None
    if not url:
        missing = _harness_missing()
        if missing:
            pytest.skip(missing)
        ckpt, port = MODELS[kind]
        env = dict(os.environ, EXTENSION=str(REPO), PORT=str(port),
                   CKPT=str(HARNESS / "webui" / "models" / "Stable-diffusion" / ckpt))
        subprocess.run([str(BIN / "stop_webui.sh"), str(port)], env=env, capture_output=True)
        out = subprocess.run([str(BIN / "start_webui.sh")], env=env, capture_output=True, text=True)
        if out.returncode:
            pytest.fail(f"harness WebUI did not start: {out.stdout[-2000:]} {out.stderr[-2000:]}")
        url, started = f"http://127.0.0.1:{port}", (port, env)
    ui = WebUI(url)
    ui.kind = kind
    ui.log = HARNESS / "run" / f"webui-{started[0]}.log" if started else None
    status, r = ui.txt2img(plain_request())
    assert status == 200, r
    ui.baseline = r["images"][0]
    yield ui
    if started:
        subprocess.run([str(BIN / "stop_webui.sh"), str(started[0])], env=started[1], capture_output=True)


def plain_request(**kw):
    req = {"prompt": "a photo of a cat, (detailed:1.2)", "negative_prompt": "blurry", "seed": 1234,
           "steps": 4, "width": 128, "height": 128, "sampler_name": "Euler", "cfg_scale": 7,
           "save_images": False, "send_images": True}
    req.update(kw)
    return req


def demofusion(args, **kw):
    return plain_request(alwayson_scripts={"demofusion_ext": {"args": args}}, **kw)
