"""Test-only WebUI extension (A1111 and Forge): makes a late DemoFusion phase fail, to test that the user still
gets the last finished phase.

Linked by tests/webui as extensions/zz-dffault. Enabled per request: alwayson_scripts {"dffault": {"args": [k]}}
makes every phase at least k times the request's width (phase k and later) fail as its sampler starts;
{"args": [k, i]} only in the i-th image of a batch count (p.iteration, from 0). (The
WebUI catches and logs errors of scripts' callbacks, so the failure is planted on the phase's own fresh sampler.)
"""
from modules import scripts


class DFFault(scripts.Script):
    def title(self):
        return "dffault"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        import gradio as gr
        return [gr.Number(value=0, visible=False, label="dffault"), gr.Number(value=-1, visible=False)]

    def process_before_every_sampling(self, p, fail_from=0, iteration=-1, *args, **kwargs):
        x = kwargs.get("x")
        if iteration is not None and iteration >= 0 and getattr(p, "iteration", 0) != iteration:
            return
        if fail_from and x is not None and x.shape[-1] * 8 >= fail_from * p.width and p.sampler is not None:
            def fail(*a, **kw):
                raise RuntimeError(f"dffault: injected failure at {x.shape[-1] * 8} px wide")
            p.sampler.sample = p.sampler.sample_img2img = fail
