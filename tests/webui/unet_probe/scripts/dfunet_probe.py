"""Test-only WebUI extension (A1111 and Forge): what the UNet itself received, and the latents of an img2img run.

Linked by tests/webui as extensions/zz-dfunet. Enabled per request: alwayson_scripts {"dfunet": {"args": [true]}};
with a second argument {"left": word, "right": word, "texts": {label: text}} it also injects synthetic phase-1
attention maps for per-view prompts (the left word's tokens attend to the left half, the right word's to the right
half, every other token nowhere) and labels every cond/uncond row of every UNet call with the text whose encoding
it carries (or "?").
While enabled it records the shape and job number of every call of the diffusion model's own `forward` (below
every hook: DemoFusion's, ControlNet's, the sampler's), on SDXL the crop coordinates (top, left in px) each row's
vector condition `y` carries (the nearest multiple of 8 whose embedding, made by the host's own embedder, it
holds), whether a ControlNet control came with the call, on Forge every call of a ControlNet model (its x shape and
four pixels of its hint rows: channels 0 and 1 at (0, 0), (0, 8), (8, 0) and the last pixel), and, around
DemoFusion's own functions, the picture latent an
img2img run started from and the latent of the final decode. GET /dfunet/calls returns them with the mean absolute
distance of the final latent from the picture latent enlarged to its size.
A third argument n > 0 makes every UNet call of more than n rows after phase 1 raise torch's out-of-memory error, as
a small GPU would. On Forge it also records the shapes the sampler plans memory for in each phase ("memory"), and
hooks the head ControlNet's get_control as another extension would, reporting whether that hook was still in
place when the request ended ("get_control").
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
    from demofusion_ext.hosts import host_for
    columns = host_for(model).crop_columns(model)
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
        return [gr.Checkbox(value=False, visible=False, label="dfunet"), gr.State(None), gr.Number(value=0, visible=False)]

    def process(self, p, enabled=False, inject=None, oom_above=0, *args):
        self.undo, self.heads = [], []
        if not enabled:
            return
        import torch
        from demofusion_ext.hosts import pictures
        STATE.clear()
        STATE.update(calls=[], control=[], picture=None, final=None, memory=[], get_control=[])
        unet = diffusion_model()
        forward = unet.forward

        crops = crop_reader()

        labels = self.inject(p, inject) if inject else None
        pooled_end = getattr(self, "pooled_end", None)

        def recording_forward(x, *a, **kw):
            call = {"job": shared.state.job_no, "shape": list(x.shape), "control": kw.get("control") is not None}
            if labels is not None and kw.get("context") is not None:
                call["labels"] = labels(kw["context"])
                if kw.get("y") is not None:
                    call["pooled"] = labels(kw["y"][:, None, :pooled_end], pooled_rows=True)
            if crops is not None and kw.get("y") is not None:
                call["crops"] = crops(kw["y"])
            STATE["calls"].append(call)
            if oom_above and shared.state.job_no >= 1 and x.shape[0] > oom_above:
                raise torch.OutOfMemoryError(f"dfunet: {x.shape[0]} rows do not fit (limit {oom_above})")
            return forward(x, *a, **kw)

        def wrap(name, keep):
            original = getattr(pictures, name)

            def wrapped(*a, **kw):
                out = original(*a, **kw)
                keep(a, out)
                return out
            setattr(pictures, name, wrapped)
            self.undo.append(lambda: setattr(pictures, name, original))
        had = unet.__dict__.get("forward")
        unet.forward = recording_forward

        def unhook():
            # sd-webui-controlnet (earlier in order) may have put the UNet's own forward back already, under the hook
            # it had set before this one: then leave it alone, or its hook would come back
            if unet.__dict__.get("forward") is recording_forward:
                unet.__dict__.pop("forward") if had is None else setattr(unet, "forward", had)
        self.undo.append(unhook)
        if hasattr(shared.sd_model, "forge_objects"):
            try:
                from backend.nn.cnets import cldm
            except ImportError:                # Forge Classic's older backend
                from ldm_patched.controlnet import cldm
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

    def inject(self, p, spec):
        """Synthetic maps through the engine's seam, and a labeller of context rows by reference encodings."""
        import torch
        from modules import prompt_parser
        from demofusion_ext.hosts import view_prompts as vp
        original = vp.ViewPrompts.phase1_maps

        def synthetic(prompts, image, latent_hw):
            engine = prompts.engine
            line = vp.prompt_word_model(engine, prompts.prompts[image], prompts.p.steps)[0]
            ids, _, positions = vp.flat_tokens(engine, line)
            h, w = latent_hw
            chunks = max(positions) // 77 + 1 if positions else 1
            maps = torch.zeros(77 * chunks, h, w)
            for side, cols in (("left", slice(0, w // 2)), ("right", slice(w // 2, w))):
                targets = set(engine.tokenize([spec[side]])[0])
                for i, t in zip(ids, positions):
                    if i in targets:
                        maps[t, :, cols] = 1.0
            return maps
        vp.ViewPrompts.phase1_maps = synthetic
        self.undo.append(lambda: setattr(vp.ViewPrompts, "phase1_maps", original))
        texts = spec["texts"]
        with torch.no_grad():
            cond = p.sd_model.get_learned_conditioning(prompt_parser.SdConditioning(list(texts.values()),
                                                                                    width=p.width, height=p.height))
        cross = cond["crossattn"] if isinstance(cond, dict) else cond
        refs = {label: cross[i].float().cpu() for i, label in enumerate(texts)}
        pooled = {}
        if isinstance(cond, dict):        # [pooled text | original size | crop | target size]: the pooled part
            from demofusion_ext.hosts import host_for
            columns = host_for(p.sd_model).crop_columns(p.sd_model)
            self.pooled_end = cond["vector"].shape[1] - 3 * columns.width
            pooled = {label: cond["vector"][i, None, :self.pooled_end].float().cpu() for i, label in enumerate(texts)}

        def labels(context, pooled_rows=False):
            out = []
            refs_now = pooled if pooled_rows else refs
            for row in context.detach().float().cpu():
                if not pooled_rows and row.shape[0] % 77 == 1:
                    row = row[1:]             # sd-webui-controlnet's mark token
                best = [k for k, r in refs_now.items() if r.shape == row.shape and (r - row).abs().max() < 1e-4]
                if not best:       # a view text shorter than the call's context is repeated to its length
                    best = [k for k, r in refs_now.items() if row.shape[0] % r.shape[0] == 0 and
                            (r.repeat(row.shape[0] // r.shape[0], 1) - row).abs().max() < 1e-4]
                out.append(best[0] if best else "?")
            return out
        return labels

    def process_before_every_sampling(self, p, enabled=False, *args, **kwargs):
        """Forge: record the shapes the sampler plans memory for (through a memory estimate of this probe's own, as
        another extension might set one), and hook the head ControlNet's get_control as another extension would."""
        objects = getattr(shared.sd_model, "forge_objects", None)
        if not enabled or objects is None:
            return
        unet, job = objects.unet, shared.state.job_no
        modifier = hasattr(unet, "set_memory_peak_estimation_modifier")     # Forge 2, Classic; Neo: memory_required
        inner = unet.model_options.get("memory_peak_estimation_modifier", unet.memory_required) if modifier \
            else unet.memory_required
        inner = getattr(inner, "dfunet_inner", inner)    # Forge shares model_options across phases: chain once

        def estimate(shape):
            STATE["memory"].append({"job": job, "shape": list(shape)})
            return inner(shape)
        estimate.dfunet_inner = inner
        if modifier:
            unet.set_memory_peak_estimation_modifier(estimate)
        else:
            unet.memory_required = estimate
        nets = unet.list_controlnets()
        if nets:
            head, original = nets[0], nets[0].get_control

            def get_control(*a, **kw):
                return original(*a, **kw)
            head.get_control = get_control
            self.heads.append((job, head, get_control))

    def postprocess(self, p, processed, *args):
        for undo in reversed(getattr(self, "undo", [])):
            undo()
        self.undo = []
        for job, head, hook in getattr(self, "heads", []):
            STATE["get_control"].append({"job": job, "intact": head.__dict__.get("get_control") is hook})
            head.__dict__.pop("get_control", None)
        self.heads = []


def report():
    out = {k: STATE.get(k, []) for k in ("calls", "control", "memory", "get_control")}
    picture, final = STATE.get("picture"), STATE.get("final")
    if picture is not None and final is not None:
        from demofusion_ext.upscale import upscale_latent
        out["distance"] = float((final - upscale_latent(picture, tuple(final.shape[-2:]))).abs().mean())
        out["picture"], out["final"] = list(picture.shape), list(final.shape)
    return out


def hooks():
    """Hooks left on the UNet's modules (DemoFusion's capture must leave none)."""
    unet = diffusion_model()
    return {"forward": sum(len(m._forward_hooks) for m in unet.modules()),
            "pre": sum(len(m._forward_pre_hooks) for m in unet.modules())}


def words(body: dict):
    """The per-view prompt word model on this WebUI's own text engine and parser, for each prompt of the body:
    its words, or why it falls back to the full prompt; and whether keeping every word, and every other word,
    renders a text that tokenizes back to exactly those words' ids and weights."""
    from modules import extra_networks
    from demofusion_ext.hosts import view_prompts as vp
    from demofusion_ext.anti_repetition.prompt_words import kept_token_weights, render, round_trip_ok
    engine = vp.text_engine(shared.sd_model)
    out = []
    for prompt in body["prompts"]:
        text = extra_networks.parse_prompts([prompt])[0][0]          # LoRA tags go before sampling
        found = vp.prompt_word_model(engine, text, 20)
        if isinstance(found, str):
            out.append({"fallback": found})
            continue
        line, segs, ws, positions = found
        result = {"words": [w.text for w in ws], "positions": positions}
        for name, kept in (("all", set(range(len(ws)))), ("half", set(range(0, len(ws), 2)))):
            view = render(segs, ws, kept, emphasis=shared.opts.emphasis != "None")
            want = kept_token_weights(segs, ws, kept)
            got = vp.flat_tokens(engine, view) if view else ([], [], [])
            result[name] = {"text": view, "ok": round_trip_ok(*want, *got[:2])}
        out.append(result)
    return out


def text_width():
    from demofusion_ext.hosts import view_prompts as vp
    engine = vp.text_engine(shared.sd_model)
    wrapped = getattr(engine, "wrapped", None) or getattr(engine, "text_encoder", None)
    for m in (wrapped.modules() if wrapped is not None else []):
        if hasattr(m, "token_embedding"):
            embedding = getattr(m.token_embedding, "wrapped", m.token_embedding)     # A1111 wraps it for embeddings
            return {"width": int(embedding.weight.shape[1])}
    return {"width": None}


def routes(_demo, app):
    app.add_api_route("/dfunet/calls", report, methods=["GET"])
    app.add_api_route("/dfunet/hooks", hooks, methods=["GET"])
    app.add_api_route("/dfunet/words", words, methods=["POST"])
    app.add_api_route("/dfunet/textwidth", text_width, methods=["GET"])


script_callbacks.on_app_started(routes)
