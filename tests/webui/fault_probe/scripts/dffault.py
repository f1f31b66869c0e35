"""Test-only WebUI extension (A1111 and Forge): makes a late DemoFusion phase fail, or presses Interrupt or Skip
inside it, to test that the user still gets the last finished phase.

Linked by tests/webui as extensions/zz-dffault. Enabled per request: alwayson_scripts {"dffault": {"args": [k]}}
makes every phase at least k times the request's width (phase k and later) fail as its sampler starts;
{"args": [k, i]} only in the i-th image of a batch count (p.iteration, from 0; -1: every image). (The
WebUI catches and logs errors of scripts' callbacks, so the failure is planted on the phase's own fresh sampler.)
{"args": [k, i, "interrupt", n]} (or "skip") instead does what the Interrupt (Skip) button does, once, in the
first such phase, from the CFG denoiser callback of its n-th model evaluation: that evaluation completes and the
sampler stops at its next one, as when a person presses the button mid-phase, without racing a clock.
"""
from modules import script_callbacks, scripts, shared

ARMED = {}          # the pending interrupt or skip of the running request


class DFFault(scripts.Script):
    def title(self):
        return "dffault"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        import gradio as gr
        return [gr.Number(value=0, visible=False, label="dffault"), gr.Number(value=-1, visible=False),
                gr.Textbox(value="fail", visible=False), gr.Number(value=1, visible=False)]

    def process(self, p, fail_from=0, iteration=-1, action="fail", evaluations=1, *args):
        ARMED.clear()
        if fail_from and action in ("interrupt", "skip"):
            ARMED.update(p=p, width=fail_from * p.width, iteration=iteration, action=action, left=int(evaluations))

    def process_before_every_sampling(self, p, fail_from=0, iteration=-1, action="fail", *args, **kwargs):
        x = kwargs.get("x")
        if action != "fail" or not this_image(p, iteration):
            return
        if fail_from and x is not None and x.shape[-1] * 8 >= fail_from * p.width and p.sampler is not None:
            def fail(*a, **kw):
                raise RuntimeError(f"dffault: injected failure at {x.shape[-1] * 8} px wide")
            p.sampler.sample = p.sampler.sample_img2img = fail

    def postprocess(self, p, processed, *args):
        ARMED.clear()


def this_image(p, iteration):
    return iteration is None or iteration < 0 or getattr(p, "iteration", 0) == iteration


def press(params):
    """on_cfg_denoiser: count the armed phase's evaluations; at the n-th, press the button."""
    if not ARMED or not this_image(ARMED["p"], ARMED["iteration"]) or params.x.shape[-1] * 8 < ARMED["width"]:
        return
    ARMED["left"] -= 1
    if ARMED["left"] <= 0:
        action = ARMED["action"]
        ARMED.clear()
        shared.state.interrupt() if action == "interrupt" else shared.state.skip()


script_callbacks.on_cfg_denoiser(press)
