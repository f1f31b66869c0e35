"""Test-only WebUI extension: records the x and ControlNet hints of every UNet call, for tests/webui.

Installed by the ControlNet tests as extensions/zz-dfprobe (after ControlNet, so ControlNet's UNet forward is
in place when this script's process() wraps it). Enabled per request: alwayson_scripts {"dfprobe": {"args": [true]}}.
GET /dfprobe/calls returns the calls of the last enabled request.
"""
from modules import script_callbacks, scripts, shared

CALLS = []


def _controlnet(p):
    for s in p.scripts.alwayson_scripts:
        if s.title() == "ControlNet" and getattr(s, "latest_network", None) is not None:
            return s.latest_network.control_params
    return []


class DFProbe(scripts.Script):
    def title(self):
        return "dfprobe"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        import gradio as gr
        return [gr.Checkbox(value=False, visible=False, label="dfprobe")]

    def process(self, p, enabled=False, *args):
        self.unet = None
        if not enabled:
            return
        CALLS.clear()
        unet = shared.sd_model.model.diffusion_model
        inner = unet.__dict__.get("forward")
        self.unet, self.inner = unet, inner

        def forward(x, *a, **kw):
            params = _controlnet(p)
            CALLS.append({
                "job": shared.state.job_no, "x": list(x.shape),
                "hints": [{"shape": list(q.hint_cond.shape),
                           # channel 0/1 of the coordinate image at three pixels of every row
                           "at00": q.hint_cond[:, :2, 0, 0].tolist(), "at08": q.hint_cond[:, :2, 0, 8].tolist(),
                           "at80": q.hint_cond[:, :2, 8, 0].tolist(), "last": q.hint_cond[:, :2, -1, -1].tolist()}
                          for q in params]})
            return (inner or type(unet).forward.__get__(unet))(x, *a, **kw)
        unet.forward = self.probe = forward

    def postprocess(self, p, processed, *args):
        # ControlNet's postprocess (earlier in order) may have restored the UNet already: then leave it alone
        if self.unet is not None and self.unet.__dict__.get("forward") is self.probe:
            if self.inner is None:
                self.unet.__dict__.pop("forward", None)
            else:
                self.unet.forward = self.inner
        self.unet = None


def _routes(_, app):
    app.add_api_route("/dfprobe/calls", lambda: CALLS, methods=["GET"])


script_callbacks.on_app_started(_routes)
