"""A WebUI over HTTP and what the tests build and read, one place each: requests with DemoFusion's arguments,
ControlNet units, the probes' arguments, X/Y/Z plots; images, infotexts, log lines.

The servers (hosts.py, servers.py) and the `webui` fixture (conftest.py) hand tests a `WebUI`.
"""
import base64
import io
import json
import urllib.error
import urllib.request

import pytest

ON = {"enabled": True}


class WebUI:
    """One model of one running server. `host` is the host's name ("a1111", "forge", "classic"), `spec` its hosts.Host;
    `baseline` the plain image of plain_request() before any DemoFusion run in the process."""

    def __init__(self, url, host, model, log=None, server="ui"):
        self.url, self.spec, self.model, self.log, self.server = url.rstrip("/"), host, model, log, server
        self.host = host.name
        self.forge = host.family == "forge"           # a Forge host: Forge 2, Classic or Neo
        self.sdxl = host.models[model].sdxl
        self.baseline = None                  # plain_request()'s image
        self.baselines = {}                   # BASELINES' images by name, taken with the plain one
        self._controlnet = None

    def __repr__(self):
        return f"WebUI({self.host}-{self.server}-{self.model} at {self.url})"

    @property
    def outputs(self):
        """The folder of the server's txt2img-images (known for a harness server started here): outputs/ on A1111
        and Forge 2, output/ on Forge Classic."""
        return self.log.parents[1] / self.spec.tree / self.get("/sdapi/v1/options")["outdir_txt2img_samples"]

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
        return self.call("POST", "/sdapi/v1/txt2img", self.with_steps(payload))

    def img2img(self, payload):
        return self.call("POST", "/sdapi/v1/img2img", self.with_steps(payload))

    def with_steps(self, payload):
        """The request with its host's step count where the test named none (HostSteps)."""
        if isinstance(payload.get("steps"), HostSteps):
            payload = dict(payload, steps=self.spec.steps)
        return payload

    def get(self, path):
        return self.call("GET", path)[1]

    def baseline_of(self, name):
        """The image of BASELINES[name] before any DemoFusion run (the test's mark names it in `baselines`)."""
        if name not in self.baselines:
            pytest.fail(f"no {name} baseline: name it in the test's webui mark, baselines=[{name!r}]")
        return self.baselines[name]

    def plain_image(self):
        """plain_request()'s image now, to compare with the baseline."""
        return self.txt2img(plain_request())[1]["images"][0]

    def controlnet_model(self):
        """The harness's tiny ControlNet for this model, by the name its ControlNet lists (Forge needs the hash)."""
        if self._controlnet is None:
            prefix = self.spec.models[self.model].controlnet
            names = [n for n in self.get("/controlnet/model_list").get("model_list", []) if n.startswith(prefix)]
            if not names:
                pytest.skip(f"no tiny ControlNet {prefix} in the {self.spec.title} harness (see its README, "
                            f"\"ControlNet\")")
            self._controlnet = names[0]
        return self._controlnet


# --- requests ---

class HostSteps(int):
    """plain_request's step count where a test names none: WebUI sends its host's `steps` instead (hosts.py)."""


def plain_request(**kw):
    req = {"prompt": "a photo of a cat, (detailed:1.2)", "negative_prompt": "blurry", "seed": 1234,
           "steps": HostSteps(4), "width": 128, "height": 128, "sampler_name": "Euler", "scheduler": "Automatic", "cfg_scale": 7,
           "save_images": False, "send_images": True}
    req.update(kw)
    return req


def demofusion(args, **kw):
    """A request with DemoFusion's arguments: a list (positional, or one dict of named settings)."""
    return plain_request(alwayson_scripts={"demofusion_ext": {"args": args}}, **kw)


def df(**settings):
    """DemoFusion on with these named settings, as the `args` of demofusion()."""
    return [dict(ON, **settings)]


def img2img_request(args, init=None, strength=0.5, **kw):
    """An img2img request of `init` (base64 PNG; default picture()) with DemoFusion's arguments."""
    return demofusion(args, init_images=[init or picture()], denoising_strength=strength, **kw)


def probe(req, name, *args):
    """Enable a test-only probe extension (dfunet, dfapply, dfprobe, dffault) in a request; returns the request."""
    req.setdefault("alwayson_scripts", {})[name] = {"args": list(args) or [True]}
    return req


def fail_in_phase(req, phase, iteration=-1):
    """The fault probe makes every phase from `phase` on (of the `iteration`-th image of a batch count) fail."""
    return probe(req, "dffault", phase, iteration)


def stop_in_phase(req, phase, action="interrupt", evaluations=2, iteration=-1):
    """The fault probe presses Interrupt (or Skip) in `phase` once it has made `evaluations` model evaluations:
    the sampler stops at its next one, deterministically."""
    return probe(req, "dffault", phase, iteration, action, evaluations)


def controlnet_unit(webui, image, **kw):
    """An enabled ControlNet unit with the harness's tiny ControlNet for the model and a control image."""
    unit = dict({"enabled": True, "model": webui.controlnet_model(), "image": image, "weight": 1.0},
                **webui.spec.controlnet_unit)
    unit.update(kw)
    return unit


def controlnet_request(df_args, units, **kw):
    """A request with ControlNet units (None: no ControlNet arguments); `df_args` None: DemoFusion off."""
    req = demofusion(df_args, **kw) if df_args is not None else plain_request(**kw)
    req.setdefault("alwayson_scripts", {})
    if units is not None:
        req["alwayson_scripts"]["ControlNet"] = {"args": units}
    return req


def plain_controlnet_request(webui):
    """No DemoFusion, one ControlNet unit: the WebUI with ControlNet as it was before DemoFusion ran."""
    from control_images import stripes
    w, h = (webui.spec.base, webui.spec.base) if webui.spec.base else (128, 96)
    return controlnet_request(None, [controlnet_unit(webui, stripes(w, h))], width=w, height=h)


# requests whose images a server takes on a fresh process, for the tests whose `webui` mark names them in
# `baselines`: WebUI.baselines[name] (plain_request()'s is always taken, as WebUI.baseline)
BASELINES = {"controlnet": plain_controlnet_request}


class AxisChoices(list):
    """The X/Y/Z plot's axis names, and the labels of its script's arguments."""
    labels: list


def xyz_axis_choices(webui):
    """The X/Y/Z plot's axis names in txt2img, whose indices its script arguments take."""
    [xyz] = [s for s in webui.get("/sdapi/v1/script-info") if s["name"] == "x/y/z plot" and not s["is_img2img"]]
    out = AxisChoices(xyz["args"][0]["choices"])
    out.labels = [a.get("label") for a in xyz["args"]]
    return out


def xyz_plot(choices, x, y=None):
    """The request fields of an X/Y/Z plot over axes (label, "typed values") or (label, [dropdown values])."""
    def axis(a):
        if a is None:
            return [0, "", []]
        label, values = a
        return [choices.index(label), "", values] if isinstance(values, list) else [choices.index(label), values, []]
    args = axis(x) + axis(y) + axis(None) + [True, True, False, False, False, False, False, 0, False]
    if "Row Count" in getattr(choices, "labels", []):     # Forge Neo's script: a row count (0: automatic) before
        args.insert(16, 0)                                # the grid margins (its xyz_grid.py run() signature)
    return {"script_name": "x/y/z plot", "script_args": args}


def phase_upscalers(webui) -> list[str]:
    """The Phase upscaler choices DemoFusion offers on this host: Latent, Lanczos (its own where the host lists only
    upscaler models, as Forge Neo), then the host's upscalers."""
    names = [u["name"] for u in webui.get("/sdapi/v1/upscalers") if u["name"] not in ("None", "Latent")]
    return ["Latent"] + ([] if "Lanczos" in names else ["Lanczos"]) + names


def pixel_upscaler(webui) -> str:
    """A pixel-space upscaler the host lists: Lanczos, or (Forge Neo lists only upscaler models) the tiny ESRGAN."""
    names = [u["name"] for u in webui.get("/sdapi/v1/upscalers")]
    return "Lanczos" if "Lanczos" in names else "tiny-esrgan-4x"


def small(webui, size=128):
    """A square base of `size` (a slow host: its own base side, Forge 64) and its 2x size."""
    side = webui.spec.base or size
    return {"width": side, "height": side}, (2 * side, 2 * side)


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


# --- answers ---

def images(response):
    from PIL import Image
    return [Image.open(io.BytesIO(base64.b64decode(b))) for b in response["images"]]


def pixels(response, i=0):
    """An answer's i-th image as a float array."""
    import numpy as np
    return np.asarray(images(response)[i].convert("RGB"), dtype=float)


def mean_abs_difference(a, b):
    import numpy as np
    return float(np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float)).mean())


def infotexts(response):
    return json.loads(response["info"])["infotexts"]


def infotext(response, i=0):
    return infotexts(response)[i]


def has(info, key, text):
    """`key: text` in an infotext; the WebUI quotes a value only when it holds a comma or colon."""
    return f"{key}: {text}," in info or f'{key}: "{text}"' in info


def server_log(webui):
    if webui.log is None:
        pytest.skip("server log unknown for a server given by URL")
    return webui.log.read_text()


def phase_log_lines(webui, phase=2):
    """The engine's report lines for `phase` in the server log, oldest first (from the report on: Neo's console
    progress bars can precede it on its line)."""
    marker = f"[DemoFusion] phase {phase} at "
    return [ln[ln.index(marker):] for ln in server_log(webui).splitlines() if marker in ln]


def started_here(webui, why="the probes are linked only into harness servers started here"):
    if webui.log is None:
        pytest.skip(why)


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


# --- per-view prompts: the unet probe's synthetic attention maps and what each view's rows carried ---

VIEW_PROMPT = "a photo of a cat and a dog"
VIEW_TEXTS = {"cat": "cat", "dog": "dog", "both": "cat dog", "full": VIEW_PROMPT, "neg": "blurry"}
INJECT = {"left": "cat", "right": "dog", "texts": VIEW_TEXTS}   # "cat" attends to the left half, "dog" the right


def cfg_rows(webui, count: dict) -> int:
    """The UNet rows of one phase of plan_line.plan_counts on this host: a cond and an uncond row per view, less
    one row per view of each sampling's first evaluation where the host makes it without the negative prompt."""
    if not count["steps"]:
        return 0
    first = count["local"] + count["global"]
    return 2 * count["views"] - (first if webui.spec.first_step_without_uncond else 0)


def view_rows(webui, labels: list) -> int:
    """Rows per view of a call (2: cond and uncond); 1 for a cond-only call where the host makes one (hosts.py)."""
    return 1 if webui.spec.first_step_without_uncond and "neg" not in labels else 2


def assert_windows_got_their_words(webui, calls):
    """2x: a 3 x 3 grid of windows (left column: the left half only, middle: both halves, right: the right half),
    then the 4 dilated views with the full prompt; each view has a cond and an uncond row."""
    later = [c for c in calls if c["job"] == 1]
    assert later
    want = ["cat", "both", "dog"] * 3 + ["full"] * 4
    for call in later:
        labels = call["labels"]
        n = view_rows(webui, labels)
        rows = [set(labels[n * v:n * v + n]) for v in range(len(labels) // n)]
        assert rows == [{w, "neg"} if n == 2 else {w} for w in want[:len(rows)]], labels
        if webui.sdxl:      # the pooled text vector follows the view's text too
            assert call["pooled"] == call["labels"], call
