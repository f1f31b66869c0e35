"""DemoFusion: the always-on WebUI script. Translates between the WebUI (UI, API, infotext, X/Y/Z plot) and the
engine; every control, API argument, PNG-info key and axis comes from the settings table (demofusion_ext/settings.py)."""
import contextlib
import html

import gradio as gr

from modules import script_callbacks, scripts, shared
from modules.ui_components import InputAccordion

from demofusion_ext.hosts import host_for
from demofusion_ext.hosts.phase_loop import RunRecord, install, plan, steps_of_run
from demofusion_ext.hosts.refusals import check_request, refuse, upscaler_names
from demofusion_ext.script.arguments import (ARG_NAMES, ENABLED_KEY, INFOTEXT_KEYS, OPTIONAL_INFOTEXT_KEYS,
                                             infotext_items, parse_args, paste_reader, with_overrides)
from demofusion_ext.script.plan_line import plan_summary
from demofusion_ext.settings import BY_NAME, SETTINGS, Setting
from demofusion_ext.speed import FAST, PRESETS, speed_preset

# the accordion's sections in order, with the controls per row (each section lists its settings in table order)
SECTIONS = (("speed", 1), ("main", 2), ("upscaling", 2), ("repetition", 2), ("advanced", 3))
# the WebUI's inputs the plan line depends on, by the suffix of their elem_id (txt2img_width, img2img_steps, ...),
# and the settings it depends on (plan_summary's arguments after the WebUI's)
PLAN_INPUTS = ("width", "height", "steps")
PLAN_SETTINGS = ("scale", "stride", "speed", "phase_denoise", "global_cutoff", "cosine_scale_2")


def make_control(s: Setting, elem_id: str):
    """The gradio control of one settings-table row (a checkbox's help goes under it: `help_line`)."""
    if s.limit.kind is bool:
        return gr.Checkbox(value=s.default, label=s.label, elem_id=elem_id)
    if s.choices == "upscalers":
        return gr.Dropdown(upscaler_names(), value=s.default, label=s.label, info=s.help, elem_id=elem_id)
    if isinstance(s.choices, tuple):
        return gr.Radio(list(s.choices), value=s.default, label=s.label, info=s.help, elem_id=elem_id)
    return gr.Slider(s.limit.low, s.limit.high, value=s.default, step=s.step, label=s.label, info=s.help,
                     elem_id=elem_id)


def img2img_picture(found: dict, canvas_pictures: list):
    """The component holding img2img's picture: a gr.Image on A1111 and Forge Classic; on Forge 2 and Neo the hidden
    background textbox of the canvas whose HTML block is img2img_image (its uuid names both; docs/HOSTS.md)."""
    image = found.get("img2img_image")
    if isinstance(image, gr.Image):
        return image
    if isinstance(image, gr.HTML):
        return next((c for c in canvas_pictures if c.elem_id and c.elem_id in str(image.value)), None)
    return None


def picture_size(image):
    """[width, height] of the picture a component hands over: a PIL image, a numpy array (a canvas with numpy=True)
    or None."""
    if image is None:
        return None
    return [image.shape[1], image.shape[0]] if hasattr(image, "shape") else list(image.size)


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

        made = {}
        with InputAccordion(False, label="DemoFusion", elem_id=eid("enabled")) as enabled:
            for section, per_row in SECTIONS:
                # a section's switches first, each with its help under it (Gradio puts a checkbox's info above it,
                # where it reads as the help of the control before); then its numbers and choices, per_row a row
                switches = [s for s in SETTINGS if s.group == section and s.limit.kind is bool]
                rows = [s for s in SETTINGS if s.group == section and s.limit.kind is not bool]
                with gr.Accordion("Advanced", open=False) if section == "advanced" else contextlib.nullcontext():
                    for s in switches:
                        made[s.name] = make_control(s, eid(s.name))
                        gr.HTML(value=f'<div class="demofusion-help">{html.escape(s.help)}</div>')
                    for i in range(0, len(rows), per_row):
                        with gr.Row():
                            made.update((s.name, make_control(s, eid(s.name))) for s in rows[i:i + per_row])
                        if section == "main" and i == 0:      # the plan line sits under Scale
                            plan_line = gr.HTML(value=plan_summary(512, 512, 20, BY_NAME["scale"].default,
                                                                   BY_NAME["stride"].default,
                                                                   0.75 if is_img2img else None),
                                                elem_id=eid("plan"), elem_classes=["demofusion-plan"])
        # img2img: the size of the picture, which decides the phase it enters at (set when a picture is opened)
        picture = gr.State(None)
        self.plan_line = (tab, plan_line, [made[n] for n in PLAN_SETTINGS], picture)
        self.wire_plan_line()
        wire_speed(made)
        controls = [enabled] + [made[s.name] for s in SETTINGS]        # the API's positional order
        # pasting an image without DemoFusion keys turns DemoFusion off
        self.infotext_fields = [(enabled, lambda d: ENABLED_KEY in d)]
        self.infotext_fields += [(made[s.name], paste_reader(s.name)) for s in SETTINGS]
        self.paste_field_names = [INFOTEXT_KEYS[n] for n in ARG_NAMES]
        return controls

    def after_component(self, component, **kwargs):
        """Collect the WebUI's own inputs the plan line depends on (created before or after this script's UI)."""
        elem_id = getattr(component, "elem_id", None) or ""
        if not hasattr(self, "webui_inputs"):
            self.webui_inputs, self.canvas_pictures = {}, []
        self.webui_inputs[elem_id] = component
        if "logical_image_background" in (getattr(component, "elem_classes", None) or []):
            self.canvas_pictures.append(component)         # a Forge canvas's picture (Forge 2, Neo)
        self.wire_plan_line()

    def wire_plan_line(self):
        """Recompute the plan line in Python whenever the size, steps, denoising, scale, stride or picture change."""
        if getattr(self, "plan_wired", False) or not hasattr(self, "plan_line"):
            return
        tab, line, settings, picture = self.plan_line
        found = getattr(self, "webui_inputs", {})
        names = [f"{tab}_{n}" for n in PLAN_INPUTS] + (["img2img_denoising_strength"] if tab == "img2img" else [])
        if not all(n in found for n in names):
            return
        inputs = [found[n] for n in names] + settings + [picture]

        def describe(width, height, steps, *rest):
            *denoising, scale_value, stride_value, speed, phase_denoise, cutoff, cosine_scale_2, picture_value = rest
            try:
                return plan_summary(int(width), int(height), int(steps), float(scale_value), float(stride_value),
                                    float(denoising[0]) if denoising else None,
                                    tuple(picture_value) if picture_value else None, relay=speed == FAST,
                                    phase_denoise=float(phase_denoise), global_cutoff=float(cutoff),
                                    cosine_scale_2=float(cosine_scale_2))
            except (TypeError, ValueError) as e:
                return f"({e})"
        line.value = describe(*[c.value for c in inputs])
        quiet = False if gr.__version__.startswith("3.") else "hidden"      # Gradio 3 (A1111) and 4 (Forge)
        for component in inputs[:-1]:
            component.change(fn=describe, inputs=inputs, outputs=[line], show_progress=quiet, queue=False)
        image = img2img_picture(found, self.canvas_pictures) if tab == "img2img" else None
        if image is not None:
            image.change(fn=picture_size, inputs=[image], outputs=[picture], show_progress=quiet, queue=False).then(
                fn=describe, inputs=inputs, outputs=[line], show_progress=quiet, queue=False)
        self.plan_wired = True

    def process(self, p, *args):
        self.record = None
        values = getattr(p, "demofusion_ext_xyz", None)      # an X/Y/Z plot cell's values turn DemoFusion on
        try:
            enabled, settings = parse_args(with_overrides(args, values) if values else args)
        except ValueError as e:
            refuse(p, e)
            return
        if not enabled:
            return
        host = host_for(p.sd_model)
        try:
            check_request(p, settings)
            host.check_model(p)
        except ValueError as e:
            refuse(p, e)
            return
        phases, entry = plan(p, settings)
        runs = len(phases) - entry.index + 1
        self.record = RunRecord()
        install(host, p, settings, self.record)
        shared.state.job_count = p.n_iter * runs
        shared.state.processing_has_refined_job_count = True
        shared.total_tqdm.updateTotal(p.n_iter * steps_of_run(p, settings))
        for key in OPTIONAL_INFOTEXT_KEYS:       # X/Y/Z plot cells share one dict: no key of an earlier cell may stay
            p.extra_generation_params.pop(key, None)
        p.extra_generation_params.update(infotext_items(settings))

    def postprocess(self, p, processed, *args):
        record = getattr(self, "record", None)
        if record is None:
            return
        self.record = None
        if record.error:
            processed.comments = (processed.comments or "") + f"\nDemoFusion: {record.error}"
        add_phase_images(p, processed, record)


def wire_speed(made: dict):
    """Choosing a Speed sets the controls of its preset, visibly; they stay editable. On the user's choice only
    (`input`): a pasted PNG info sets Speed and each control itself, and must not be overwritten by the preset."""
    names = [n for n in PRESETS[FAST] if n != "upscaler"]

    def choose(speed, upscaler):
        preset = speed_preset(speed, upscaler)
        return [preset[n] for n in names] + [preset["upscaler"]]
    made["speed"].input(fn=choose, inputs=[made["speed"], made["upscaler"]],
                        outputs=[made[n] for n in names] + [made["upscaler"]], queue=False)


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


def add_axis_options():
    """The X/Y/Z plot axes of the settings-table rows that name one. Added when this script loads (the WebUI loads
    its own scripts, xyz_grid among them, before extensions) so that an API-only start, which builds the scripts'
    arguments before any UI callback, lists them too; again before the UI in case xyz_grid loaded later. Adding
    twice changes nothing."""
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

    def option(s: Setting):
        label = f"[DemoFusion] {s.axis}"
        if s.choices == "upscalers":         # a list of names: the axis offers the installed upscalers
            return xyz_grid.AxisOption(label, str, setter(s.name, str), choices=upscaler_names)
        if isinstance(s.choices, tuple):
            return xyz_grid.AxisOption(label, str, setter(s.name, str), choices=lambda: list(s.choices))
        if s.limit.kind is bool:
            return xyz_grid.AxisOption(label, str, setter(s.name, lambda v: str(v).lower() == "true"),
                                       choices=lambda: ["False", "True"])
        return xyz_grid.AxisOption(label, float, setter(s.name, s.limit.kind))
    xyz_grid.axis_options.extend(option(s) for s in SETTINGS if s.axis and f"[DemoFusion] {s.axis}" not in present)


add_axis_options()
script_callbacks.on_before_ui(add_axis_options)
