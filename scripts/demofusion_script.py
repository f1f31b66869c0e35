"""DemoFusion: the always-on WebUI script. Translates between the WebUI (UI, API, infotext) and the engine."""
import gradio as gr

from modules import script_callbacks, scripts, shared
from modules.ui_components import InputAccordion

from demofusion_ext.api_args import ARG_NAMES, INFOTEXT_KEYS, OPTIONAL_KEYS, infotext_items, parse_args
from demofusion_ext.hosts.webui import plan, upscaler_names
from demofusion_ext.plan_summary import plan_summary
from demofusion_ext.settings import LIMITS, DemoFusionSettings

DEFAULTS = DemoFusionSettings()
# the WebUI's inputs the plan line depends on, by the suffix of their elem_id (txt2img_width, img2img_steps, ...)
PLAN_INPUTS = ("width", "height", "steps")


class DemoFusionScript(scripts.Script):
    sorting_priority = 15

    def title(self):
        # the API key (lower-cased title); Tiled Diffusion already uses "demofusion"
        return "demofusion_ext"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        tab = "img2img" if is_img2img else "txt2img"

        def eid(name):
            return f"demofusion_ext_{tab}_{name}"

        d = DEFAULTS
        with InputAccordion(False, label="DemoFusion", elem_id=eid("enabled")) as enabled:
            with gr.Row():
                scale = gr.Slider(1.5, 8, value=d.scale, step=0.5, label="Scale",
                                  info="Final size as a multiple of Width x Height; each whole step is one more phase",
                                  elem_id=eid("scale"))
                stride = gr.Slider(0.125, 1.0, value=d.stride, step=0.125, label="Window stride",
                                   info="How far local windows move, as a fraction of a window: smaller = more overlap, "
                                        "fewer seams, slower", elem_id=eid("stride"))
            plan_line = gr.HTML(value=plan_summary(512, 512, 20, d.scale, d.stride, 0.75 if is_img2img else None),
                                elem_id=eid("plan"), elem_classes=["demofusion-plan"])
            with gr.Row():
                sigma = gr.Slider(0.1, 5.0, value=d.sigma, step=0.1, label="Global blur (sigma)",
                                  info="Blur of the dilated global views: higher keeps the composition smoother",
                                  elem_id=eid("sigma"))
                phase_denoise = gr.Slider(0.05, 1.0, value=d.phase_denoise, step=0.05, label="Phase denoising strength",
                                          info="How much each enlarged phase may repaint: 1 = all of it (as the paper)",
                                          elem_id=eid("phase_denoise"))
            with gr.Row():
                upscaler = gr.Dropdown(upscaler_names(), value=d.upscaler, label="Phase upscaler",
                                       info="How each finished phase is enlarged for the next: Latent (DemoFusion's "
                                            "own) or an upscaler on the decoded picture (keeps an img2img picture's "
                                            "detail)", elem_id=eid("upscaler"))
                phase_images = gr.Checkbox(value=d.phase_images, label="Also return the image of each earlier phase",
                                           elem_id=eid("phase_images"))
            with gr.Row():
                patch_prompts = gr.Checkbox(value=d.patch_prompts, label="Per-view prompts (fewer repeated objects)",
                                            info="Each window keeps only the prompt words phase 1 drew in its "
                                                 "area (AccDiffusion)", elem_id=eid("patch_prompts"))
                keep = gr.Slider(0, 1, value=d.prompt_keep_threshold, step=0.05, label="Prompt keep threshold",
                                 info="Share of a window a word must cover to stay in its prompt",
                                 elem_id=eid("prompt_keep_threshold"))
                interaction = gr.Checkbox(value=d.window_interaction, label="Window interaction",
                                          info="The dilated global views exchange values at every step",
                                          elem_id=eid("window_interaction"))
            with gr.Accordion("Advanced", open=False):
                with gr.Row():
                    c1 = gr.Slider(0, 10, value=d.cosine_scale_1, step=0.1, label="Skip residual strength (cosine scale 1)",
                                   info="Higher lets go of the previous phase sooner", elem_id=eid("cosine_scale_1"))
                    c2 = gr.Slider(0, 10, value=d.cosine_scale_2, step=0.1, label="Global view weight (cosine scale 2)",
                                   info="Higher hands over to the local windows sooner", elem_id=eid("cosine_scale_2"))
                    c3 = gr.Slider(0, 10, value=d.cosine_scale_3, step=0.1, label="Blur fade (cosine scale 3)",
                                   info="Higher sharpens the global views sooner", elem_id=eid("cosine_scale_3"))
                with gr.Row():
                    view_batch = gr.Slider(1, 64, value=d.view_batch_size, step=1, label="View batch size",
                                           info="Views per model call: higher is faster and uses more VRAM",
                                           elem_id=eid("view_batch_size"))
                    tile = gr.Slider(256, 4096, value=d.decode_tile_size, step=64, label="VAE decode tile (px)",
                                     info="Lower uses less VRAM when decoding large images", elem_id=eid("decode_tile_size"))
                    jitter = gr.Checkbox(value=d.random_jitter, label="Random window jitter",
                                         info="Move windows a little at every step: fewer seams", elem_id=eid("random_jitter"))
        # img2img: the size of the picture, which decides the phase it enters at (set when a picture is opened)
        picture = gr.State(None)
        self.plan_line = (tab, plan_line, scale, stride, picture)
        self.wire_plan_line()
        controls = [enabled, scale, stride, view_batch, c1, c2, c3, sigma, jitter, phase_denoise, tile, phase_images,
                    upscaler, patch_prompts, keep, interaction]
        assert len(controls) == len(ARG_NAMES)
        # pasting an image without DemoFusion keys turns DemoFusion off
        self.infotext_fields = [(enabled, lambda d: INFOTEXT_KEYS["enabled"] in d)]
        self.infotext_fields += [(c, pasted(n)) for c, n in zip(controls[1:], ARG_NAMES[1:])]
        self.paste_field_names = [INFOTEXT_KEYS[n] for n in ARG_NAMES]
        return controls

    def after_component(self, component, **kwargs):
        """Collect the WebUI's own inputs the plan line depends on (created before or after this script's UI)."""
        elem_id = getattr(component, "elem_id", None) or ""
        if not hasattr(self, "webui_inputs"):
            self.webui_inputs = {}
        self.webui_inputs[elem_id] = component
        self.wire_plan_line()

    def wire_plan_line(self):
        """Recompute the plan line in Python whenever the size, steps, denoising, scale, stride or picture change."""
        if getattr(self, "plan_wired", False) or not hasattr(self, "plan_line"):
            return
        tab, line, scale, stride, picture = self.plan_line
        found = getattr(self, "webui_inputs", {})
        names = [f"{tab}_{n}" for n in PLAN_INPUTS] + (["img2img_denoising_strength"] if tab == "img2img" else [])
        if not all(n in found for n in names):
            return
        inputs = [found[n] for n in names] + [scale, stride, picture]

        def describe(width, height, steps, *rest):
            *denoising, scale_value, stride_value, picture_value = rest
            try:
                return plan_summary(int(width), int(height), int(steps), float(scale_value), float(stride_value),
                                    float(denoising[0]) if denoising else None,
                                    tuple(picture_value) if picture_value else None)
            except (TypeError, ValueError) as e:
                return f"({e})"
        line.value = describe(*[c.value for c in inputs])
        quiet = False if gr.__version__.startswith("3.") else "hidden"      # Gradio 3 (A1111) and 4 (Forge)
        for component in inputs[:-1]:
            component.change(fn=describe, inputs=inputs, outputs=[line], show_progress=quiet, queue=False)
        image = found.get("img2img_image") if tab == "img2img" else None
        if isinstance(image, gr.Image):         # A1111's img2img picture (Forge's canvas is another component)
            image.change(fn=lambda img: list(img.size) if img is not None else None, inputs=[image],
                         outputs=[picture], show_progress=quiet, queue=False).then(
                fn=describe, inputs=inputs, outputs=[line], show_progress=quiet, queue=False)
        self.plan_wired = True

    def process(self, p, *args):
        host = host_adapter(p)
        self.record = None
        try:
            enabled, settings = parse_args(xyz_overrides(p, args))
        except ValueError as e:
            host.refuse(p, e)
            return
        if not enabled:
            return
        try:
            host.check_request(p, settings)
        except ValueError as e:
            host.refuse(p, e)
            return
        phases, entry = plan(p, settings)
        runs = len(phases) - entry.index + 1
        self.record = host.RunRecord()
        host.install(p, settings, self.record)
        shared.state.job_count = p.n_iter * runs
        shared.state.processing_has_refined_job_count = True
        shared.total_tqdm.updateTotal(p.n_iter * p.steps * runs)
        for name in OPTIONAL_KEYS:       # X/Y/Z plot cells share one dict: no key of an earlier cell may stay
            p.extra_generation_params.pop(INFOTEXT_KEYS[name], None)
        p.extra_generation_params.update(infotext_items(settings))

    def postprocess(self, p, processed, *args):
        record = getattr(self, "record", None)
        if record is None:
            return
        self.record = None
        if record.error:
            processed.comments = (processed.comments or "") + f"\nDemoFusion: {record.error}"
        add_phase_images(p, processed, record)


def host_adapter(p):
    """Forge's model object carries `forge_objects`; A1111's does not."""
    if hasattr(p.sd_model, "forge_objects"):
        from demofusion_ext.hosts import forge as host
    else:
        from demofusion_ext.hosts import a1111 as host
    return host


def pasted(name):
    """The PNG-info key of a control; true/false keys need a reader, since bool("False") is True. An optional key
    that a DemoFusion infotext lacks reads as its default (off)."""
    key = INFOTEXT_KEYS[name]
    if LIMITS[name].kind is not bool and name not in OPTIONAL_KEYS:
        return key
    default = getattr(DEFAULTS, name)

    def read(d):
        if key not in d:
            return default if name in OPTIONAL_KEYS and INFOTEXT_KEYS["enabled"] in d else None
        return str(d[key]).lower() == "true" if LIMITS[name].kind is bool else float(d[key])
    return read


def add_phase_images(p, processed, record):
    """Phase images go right after the final images (before what other scripts appended without an infotext,
    such as ControlNet's detected maps), labelled, and are saved beside the final images with a suffix."""
    from modules import images as webui_images
    from modules.shared import opts
    first = processed.index_of_first_image
    at = len(processed.infotexts)              # the end of the images the WebUI itself produced
    for iteration, phase, decoded in record.phase_images:
        for i, img in enumerate(decoded):
            k = iteration * p.batch_size + i              # the final image this phase belongs to
            pil = webui_images.Image.fromarray(img.numpy())
            final_info = processed.infotexts[min(first + k, len(processed.infotexts) - 1)]
            info = f"{final_info}, DemoFusion phase: {phase.index} of {record.phases_planned}"
            processed.images.insert(at, pil)
            processed.infotexts.insert(at, info)
            at += 1
            if p.save_samples():
                webui_images.save_image(pil, p.outpath_samples, "", p.all_seeds[k], p.all_prompts[k], opts.samples_format,
                                        info=info, p=p, suffix=f"-demofusion-phase{phase.index}")


def xyz_overrides(p, args):
    """Values an XYZ plot axis set on p (see add_axis_options) override the UI's and turn DemoFusion on."""
    values = getattr(p, "demofusion_ext_xyz", None)
    if not values:
        return args
    named = dict(args[0]) if args and isinstance(args[0], dict) else dict(zip(ARG_NAMES, args))
    named.update(values, enabled=True)
    return [named]


AXES = {"[DemoFusion] Scale": "scale", "[DemoFusion] Window stride": "stride", "[DemoFusion] Sigma": "sigma",
        "[DemoFusion] Phase upscaler": "upscaler", "[DemoFusion] Per-view prompts": "patch_prompts",
        "[DemoFusion] Prompt keep threshold": "prompt_keep_threshold",
        "[DemoFusion] Window interaction": "window_interaction"}


def add_axis_options():
    """The X/Y/Z plot axes. Added when this script loads (the WebUI loads its own scripts, xyz_grid among them,
    before extensions) so that an API-only start, which builds the scripts' arguments before any UI callback,
    lists them too; again before the UI in case xyz_grid loaded later. Adding twice changes nothing."""
    xyz = [x for x in scripts.scripts_data if x.script_class.__module__ == "xyz_grid.py"]
    if not xyz:
        return
    xyz_grid = xyz[0].module
    present = {option.label for option in xyz_grid.axis_options}

    def setter(name, kind):
        def apply(p, value, _):
            values = dict(getattr(p, "demofusion_ext_xyz", {}))     # cells are shallow copies of one p
            values[name] = kind(value)
            p.demofusion_ext_xyz = values
        return apply

    def option(label, name):
        kind = LIMITS[name].kind
        if kind is str:         # a list of names: the axis offers the installed upscalers
            return xyz_grid.AxisOption(label, str, setter(name, str), choices=upscaler_names)
        if kind is bool:
            return xyz_grid.AxisOption(label, str, setter(name, lambda v: str(v).lower() == "true"),
                                       choices=lambda: ["False", "True"])
        return xyz_grid.AxisOption(label, float, setter(name, float))
    xyz_grid.axis_options.extend(option(label, name) for label, name in AXES.items() if label not in present)


add_axis_options()
script_callbacks.on_before_ui(add_axis_options)
