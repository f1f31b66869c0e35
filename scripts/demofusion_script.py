"""DemoFusion: the always-on WebUI script. Translates between the WebUI (UI, API, infotext) and the engine."""
import gradio as gr

from modules import scripts, shared
from modules.ui_components import InputAccordion

from demofusion_ext.api_args import ARG_NAMES, INFOTEXT_KEYS, parse_args
from demofusion_ext.phases import plan_phases
from demofusion_ext.settings import DemoFusionSettings

DEFAULTS = DemoFusionSettings()


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
            with gr.Row():
                sigma = gr.Slider(0.1, 5.0, value=d.sigma, step=0.1, label="Global blur (sigma)",
                                  info="Blur of the dilated global views: higher keeps the composition smoother",
                                  elem_id=eid("sigma"))
                phase_denoise = gr.Slider(0.05, 1.0, value=d.phase_denoise, step=0.05, label="Phase denoising strength",
                                          info="How much each enlarged phase may repaint: 1 = all of it (as the paper)",
                                          elem_id=eid("phase_denoise"))
            phase_images = gr.Checkbox(value=d.phase_images, label="Also return the image of each earlier phase",
                                       elem_id=eid("phase_images"))
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
        controls = [enabled, scale, stride, view_batch, c1, c2, c3, sigma, jitter, phase_denoise, tile, phase_images]
        assert len(controls) == len(ARG_NAMES)
        self.infotext_fields = [(c, INFOTEXT_KEYS[n]) for c, n in zip(controls, ARG_NAMES)]
        self.paste_field_names = [INFOTEXT_KEYS[n] for n in ARG_NAMES]
        return controls

    def process(self, p, *args):
        from demofusion_ext import host_a1111 as host
        self.record = None
        try:
            enabled, settings = parse_args(args)
        except ValueError as e:
            host.refuse(p, e)
            return
        if not enabled:
            return
        try:
            host.check_request(p)
        except ValueError as e:
            host.refuse(p, e)
            return
        phases = plan_phases(p.height // 8, p.width // 8, settings.scale)
        self.record = host.RunRecord()
        host.install(p, settings, self.record)
        shared.state.job_count = p.n_iter * len(phases)
        shared.state.processing_has_refined_job_count = True
        shared.total_tqdm.updateTotal(p.n_iter * p.steps * len(phases))
        final = phases[-1]
        p.extra_generation_params["DemoFusion"] = True
        for name, value in settings.as_dict().items():
            p.extra_generation_params[INFOTEXT_KEYS[name]] = value
        p.extra_generation_params["DemoFusion output size"] = f"{final.width * 8}x{final.height * 8}"

    def postprocess(self, p, processed, *args):
        record = getattr(self, "record", None)
        if record is None:
            return
        self.record = None
        if record.error:
            processed.comments = (processed.comments or "") + f"\nDemoFusion: {record.error}"
        for phase, images in record.phase_images:
            from modules import images as webui_images
            for i, img in enumerate(images):
                pil = webui_images.Image.fromarray(
                    (((img.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()))
                processed.images.append(pil)
                processed.infotexts.append(f"DemoFusion phase {phase.index} of {record.phases_planned} "
                                           f"({pil.width}x{pil.height})")
