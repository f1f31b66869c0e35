"""Test-only A1111 extension: another extension's own instance `sd_model.apply_model`, set before DemoFusion runs.

Linked by tests/webui as extensions/zz-dfapply. Enabled per request: alwayson_scripts
{"dfapply": {"args": [true, oom_above]}}. While enabled, every UNet call through apply_model is recorded (phase by
job number, timestep, rows, the cross-attention context length, and a checksum of each row of x, so two calls can be
seen to get the same views); with oom_above > 0, a call of more rows in a phase after the first raises torch's
out-of-memory error, as a small GPU would. GET /dfapply/calls returns the calls and whether the probe's hook was
still in place when the request ended.
"""
import torch

from modules import script_callbacks, scripts, shared

STATE = {"calls": [], "intact": None}


class DFApplyProbe(scripts.Script):
    def title(self):
        return "dfapply"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        import gradio as gr
        return [gr.Checkbox(value=False, visible=False, label="dfapply"), gr.Number(value=0, visible=False)]

    def process(self, p, enabled=False, oom_above=0, *args):
        self.model = None
        if not enabled:
            return
        STATE.update(calls=[], intact=None)
        model = shared.sd_model
        inner = model.apply_model

        def apply_model(x, t, cond=None, *a, **kw):
            job = shared.state.job_no
            ctx = (cond.get("c_crossattn", cond.get("crossattn"))) if isinstance(cond, dict) else None
            ctx = ctx[0] if isinstance(ctx, list) else ctx
            STATE["calls"].append({"job": job, "t": float(t.flatten()[0]), "rows": x.shape[0], "x": list(x.shape),
                                   "context": int(ctx.shape[1]) if ctx is not None else None,
                                   "sums": [round(float(s), 3) for s in x.double().flatten(1).sum(1)]})
            if oom_above and job >= 1 and x.shape[0] > oom_above:
                raise torch.OutOfMemoryError(f"dfapply: {x.shape[0]} rows do not fit (limit {oom_above})")
            return inner(x, t, cond, *a, **kw)
        model.apply_model = self.hook = apply_model
        self.model = model

    def postprocess(self, p, processed, *args):
        if self.model is None:
            return
        STATE["intact"] = self.model.__dict__.get("apply_model") is self.hook
        self.model.__dict__.pop("apply_model", None)
        self.model = None


def routes(_demo, app):
    app.add_api_route("/dfapply/calls", lambda: STATE, methods=["GET"])


script_callbacks.on_app_started(routes)
