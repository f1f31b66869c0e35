"""Test-only WebUI extension (A1111 and Forge): what the UNet itself received, and the latents of an img2img run.

Linked by tests/webui as extensions/zz-dfunet. Enabled per request: alwayson_scripts {"dfunet": {"args": [true]}}.
While enabled it records the shape and job number of every call of the diffusion model's own `forward` (below
every hook: DemoFusion's, ControlNet's, the sampler's), and, around DemoFusion's own functions, the picture latent an
img2img run started from and the latent of the final decode. GET /dfunet/calls returns them with the mean absolute
distance of the final latent from the picture latent enlarged to its size.
"""
from modules import script_callbacks, scripts, shared

STATE = {}


def diffusion_model():
    model = shared.sd_model
    objects = getattr(model, "forge_objects", None)
    return objects.unet.model.diffusion_model if objects is not None else model.model.diffusion_model


class DFUNetProbe(scripts.Script):
    def title(self):
        return "dfunet"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        import gradio as gr
        return [gr.Checkbox(value=False, visible=False, label="dfunet")]

    def process(self, p, enabled=False, *args):
        self.undo = []
        if not enabled:
            return
        from demofusion_ext.hosts import webui
        STATE.clear()
        STATE.update(calls=[], picture=None, final=None)
        unet = diffusion_model()
        forward = unet.forward

        def recording_forward(x, *a, **kw):
            STATE["calls"].append({"job": shared.state.job_no, "shape": list(x.shape)})
            return forward(x, *a, **kw)

        def wrap(name, keep):
            original = getattr(webui, name)

            def wrapped(*a, **kw):
                out = original(*a, **kw)
                keep(a, out)
                return out
            setattr(webui, name, wrapped)
            self.undo.append(lambda: setattr(webui, name, original))
        had = unet.__dict__.get("forward")
        unet.forward = recording_forward
        self.undo.append(lambda: unet.__dict__.pop("forward") if had is None else setattr(unet, "forward", had))
        wrap("encode_picture", lambda a, out: STATE.update(picture=out.detach().float().cpu()))
        wrap("decode", lambda a, out: STATE.update(final=a[1].detach().float().cpu()))

    def postprocess(self, p, processed, *args):
        for undo in reversed(getattr(self, "undo", [])):
            undo()
        self.undo = []


def report():
    out = {"calls": STATE.get("calls", [])}
    picture, final = STATE.get("picture"), STATE.get("final")
    if picture is not None and final is not None:
        from demofusion_ext.upscale import upscale_latent
        out["distance"] = float((final - upscale_latent(picture, tuple(final.shape[-2:]))).abs().mean())
        out["picture"], out["final"] = list(picture.shape), list(final.shape)
    return out


def routes(_demo, app):
    app.add_api_route("/dfunet/calls", report, methods=["GET"])


script_callbacks.on_app_started(routes)
