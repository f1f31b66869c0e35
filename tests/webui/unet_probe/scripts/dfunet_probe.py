"""Test-only WebUI extension (A1111 and Forge): what the UNet itself received, and the latents of an img2img run.

Linked by tests/webui as extensions/zz-dfunet. Enabled per request: alwayson_scripts {"dfunet": {"args": [true]}}.
While enabled it records the shape and job number of every call of the diffusion model's own `forward` (below
every hook: DemoFusion's, ControlNet's, the sampler's), on SDXL the crop coordinates (top, left in px) each row's
vector condition `y` carries (the nearest multiple of 8 whose embedding, made by the host's own embedder, it
holds), whether a ControlNet control came with the call, on Forge every call of a ControlNet model (its x shape and
four pixels of its hint rows: channels 0 and 1 at (0, 0), (0, 8), (8, 0) and the last pixel), and, around
DemoFusion's own functions, the picture latent an
img2img run started from and the latent of the final decode. GET /dfunet/calls returns them with the mean absolute
distance of the final latent from the picture latent enlarged to its size.
"""
from modules import script_callbacks, scripts, shared

STATE = {}


def diffusion_model():
    model = shared.sd_model
    objects = getattr(model, "forge_objects", None)
    return objects.unet.model.diffusion_model if objects is not None else model.model.diffusion_model


def crop_reader():
    """SDXL: y rows -> [[top, left], ...] in px, read back through the host's crop-coordinate embedder."""
    import torch
    model = shared.sd_model
    if not getattr(model, "is_sdxl", False):
        return None
    if hasattr(model, "forge_objects"):
        from demofusion_ext.hosts.forge import crop_columns
    else:
        from demofusion_ext.hosts.a1111 import crop_columns
    columns = crop_columns(model)
    values = torch.arange(0, 4097, 8, dtype=torch.float32)
    with torch.no_grad():
        table = columns.embed(values).reshape(len(values), -1).float().cpu()
    dim = table.shape[1]

    def read(y):
        start = y.shape[1] - 2 * columns.width          # [.. | crop top | crop left | target size]
        y = y.detach().float().cpu()
        out = []
        for row in y:
            top, left = row[start:start + dim], row[start + dim:start + 2 * dim]
            out.append([int(values[(table - v).abs().sum(1).argmin()]) for v in (top, left)])
        return out
    return read


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
        STATE.update(calls=[], control=[], picture=None, final=None)
        unet = diffusion_model()
        forward = unet.forward

        crops = crop_reader()

        def recording_forward(x, *a, **kw):
            call = {"job": shared.state.job_no, "shape": list(x.shape), "control": kw.get("control") is not None}
            if crops is not None and kw.get("y") is not None:
                call["crops"] = crops(kw["y"])
            STATE["calls"].append(call)
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
        if hasattr(shared.sd_model, "forge_objects"):
            from backend.nn.cnets import cldm
            control_forward = cldm.ControlNet.forward

            def recording_control(net, x, hint, *a, **kw):
                STATE["control"].append({"job": shared.state.job_no, "x": list(x.shape), "hint": {
                    "shape": list(hint.shape), "at00": hint[:, :2, 0, 0].tolist(), "at08": hint[:, :2, 0, 8].tolist(),
                    "at80": hint[:, :2, 8, 0].tolist(), "last": hint[:, :2, -1, -1].tolist()}})
                return control_forward(net, x, hint, *a, **kw)
            cldm.ControlNet.forward = recording_control
            self.undo.append(lambda: setattr(cldm.ControlNet, "forward", control_forward))
        wrap("encode_picture", lambda a, out: STATE.update(picture=out.detach().float().cpu()))
        wrap("decode", lambda a, out: STATE.update(final=a[1].detach().float().cpu()))

    def postprocess(self, p, processed, *args):
        for undo in reversed(getattr(self, "undo", [])):
            undo()
        self.undo = []


def report():
    out = {"calls": STATE.get("calls", []), "control": STATE.get("control", [])}
    picture, final = STATE.get("picture"), STATE.get("final")
    if picture is not None and final is not None:
        from demofusion_ext.upscale import upscale_latent
        out["distance"] = float((final - upscale_latent(picture, tuple(final.shape[-2:]))).abs().mean())
        out["picture"], out["final"] = list(picture.shape), list(final.shape)
    return out


def routes(_demo, app):
    app.add_api_route("/dfunet/calls", report, methods=["GET"])


script_callbacks.on_app_started(routes)
