"""The phase loop around the WebUI's `p.sample`, the same on every host.

`install` replaces `p.sample` for one generation. For each image batch, `BatchRun` runs phase 1 (the WebUI's own
sampling) or lets a large img2img picture enter at a later phase, then runs the later phases through `run_phase`
(a fresh sampler each, hooked by sampler_hooks.py and the host's `fused_model`), and writes what happened into
the infotext. A late phase that fails or is interrupted leaves the last finished phase as the image.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch

from modules import processing, shared
from modules.sd_samplers_common import InterruptedException

from ..model_calls import CallCounter
from ..phases import entry_phase, plan_phases, relay_steps
from ..region_noise import add_region_noise
from ..settings import LATENT, DemoFusionSettings
from ..skip_residual import anchor
from ..speed import relays
from ..view_batch import ViewBatch
from . import pictures
from .interface import Host
from .model_call import FusedCall
from .refusals import size_of
from .sampler_hooks import interrupted, new_phase, sample_phase

# infotext keys that describe one image of a batch count (reset as each image starts) ...
OUTPUT_KEY, ERROR_KEY, STOPPED_KEY, NOTE_KEY = ("DemoFusion output size", "DemoFusion error", "DemoFusion stopped",
                                                "DemoFusion note")
# ... and one that describes the plan: where a large img2img picture entered
ENTRY_KEY = "DemoFusion picture entry"


@dataclass
class RunRecord:
    """What a generation leaves for the script's postprocess: phase images and how far it got."""
    phase_images: list = field(default_factory=list)     # (iteration, phase, uint8 [B, H, W, 3] on the CPU)
    phases_planned: int = 0
    error: str | None = None
    view_batch: ViewBatch | None = None                  # shrunk on out-of-memory, kept for the whole generation


def plan(p, settings: DemoFusionSettings):
    """(the phases, the phase the run starts at): a large img2img picture enters at the largest phase it covers."""
    phases = plan_phases(p.height // 8, p.width // 8, settings.scale)
    return phases, entry_phase(phases, pictures.picture_size(p))


def strength_of(p, settings: DemoFusionSettings, enlarged: bool) -> float:
    """A phase's denoising strength: the user's where the picture enters, the phase strength where it was enlarged."""
    if not enlarged:
        return p.denoising_strength
    return settings.phase_denoise * (p.denoising_strength if pictures.is_img2img(p) else 1.0)


def steps_of_run(p, settings: DemoFusionSettings) -> int:
    """Sampler steps of one image's phases (for the progress bar): all steps, or a relayed phase's share (Fast)."""
    phases, entry = plan(p, settings)
    return sum(p.steps if phase.index == 1 or not relays(settings)
               else relay_steps(p.steps, strength_of(p, settings, phase.index > entry.index))
               for phase in phases[entry.index - 1:])


def install(host: Host, p, settings: DemoFusionSettings, record: RunRecord) -> None:
    """Replace p.sample with the DemoFusion phases around the original sample, inside the host's run guard."""
    original = p.sample

    def sample(conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts):
        with host.run_guard(p):
            run = BatchRun(host, p, settings, record, conditioning, unconditional_conditioning, prompts)
            return run(lambda: original(conditioning=conditioning, unconditional_conditioning=unconditional_conditioning,
                                        seeds=seeds, subseeds=subseeds, subseed_strength=subseed_strength,
                                        prompts=prompts))
    p.sample = sample


class BatchRun:
    """One image batch of a generation (one `p.sample` call): phase one or the picture's entry, the later phases,
    and the outcome written into the infotext."""

    def __init__(self, host: Host, p, settings: DemoFusionSettings, record: RunRecord, c, uc, prompts):
        self.host, self.p, self.settings, self.record, self.c, self.uc = host, p, settings, record, c, uc
        self.params = p.extra_generation_params
        for key in (ERROR_KEY, STOPPED_KEY, NOTE_KEY):
            self.params.pop(key, None)
        if record.view_batch is None:
            record.view_batch = ViewBatch(settings.view_batch_size)
        self.phases, self.entry = plan(p, settings)
        record.phases_planned = len(self.phases)
        self.params[OUTPUT_KEY] = size_of(self.phases[-1])
        self.iteration = getattr(p, "iteration", 0)
        self.window = self.phases[0].shape
        self.result = self.reference = None   # the latest latent; the latent each phase is anchored to
        self.done = None                      # the last finished phase (None: the picture, before any phase)
        self.pixels = None                    # the finished phase decoded, when made for its image or the upscaler
        self.notes, self.stopped = [], None
        self.view_prompts = self._view_prompts(prompts)

    def __call__(self, sample_phase_one):
        if self.entry.index == 1:
            self.phase_one(sample_phase_one)
        else:
            self.enter_picture()
        self.later_phases()
        return self.outcome()

    def _view_prompts(self, prompts):
        if not self.settings.view_prompts or len(self.phases) == 1:
            return None
        if self.entry.index > 1:
            self.notes.append("per-view prompts need phase 1's attention: the picture entered at a later phase, so "
                              "every view kept the full prompt")
            return None
        from .view_prompts import ViewPrompts
        return ViewPrompts(self.p, self.settings, prompts)

    def phase_one(self, sample):
        """The WebUI's own sampling at the base size (per-view prompts record its attention)."""
        p, settings, first = self.p, self.settings, self.phases[0]
        if pictures.is_img2img(p):
            pictures.encode_init_tiled(p, settings)
        vp = self.view_prompts
        with vp.capturing(first.shape) if vp is not None else contextlib.nullcontext():
            self.result = self.reference = sample()
        if vp is not None:
            vp.finish(first.shape)
        self.done = first
        if settings.phase_images and len(self.phases) > 1:
            self.pixels = pictures.to_uint8(pictures.decode(p, self.result, settings))
            self.record.phase_images.append((self.iteration, first, self.pixels))

    def enter_picture(self):
        """The picture covers a later phase: it enters there with its own detail, the phases below are skipped."""
        entry = self.entry
        self.params[ENTRY_KEY] = f"phase {entry.index} of {len(self.phases)} at {size_of(entry)}"
        print(f"[DemoFusion] the {'x'.join(map(str, pictures.picture_size(self.p)))} picture enters at phase "
              f"{entry.index} ({size_of(entry)}); phases 1-{entry.index - 1} are skipped")
        self.result = self.reference = pictures.encode_picture(self.p, self.settings, entry.width * 8, entry.height * 8)

    def later_phases(self):
        p, settings = self.p, self.settings
        for phase in self.phases[self.entry.index if self.done is not None else self.entry.index - 1:]:
            if interrupted():
                self.stopped = phase
                return
            if self.done is not None:
                shared.state.nextjob()
            strength = strength_of(p, settings, enlarged=self.done is not None)
            try:
                start = self.start_of(phase)
                per_view = self.view_prompts.for_phase(phase, self.window) if self.view_prompts is not None else None
                out, calls = run_phase(self.host, p, phase, self.window, settings, start, self.reference, self.c,
                                       self.uc, self.record.view_batch, strength, per_view)
            except InterruptedException:
                self.stopped = phase
                return
            except Exception as e:              # never lose the finished phases
                if self.done is None:
                    raise
                self.record.error = f"phase {phase.index} failed: {e}"
                print(f"[DemoFusion] {self.record.error}; returning phase {self.done.index}")
                # the infotext is written after sampling: the image's PNG info and the API's info say what happened
                self.params[ERROR_KEY] = f"{self.record.error}; the image is phase {self.done.index}"
                return
            if interrupted():                   # the sampler returned a partial phase
                self.stopped = phase
                return
            if calls == 0:
                self.notes.append(f"phase {phase.index} made no model evaluation (its denoising strength leaves no "
                                  f"step of {p.steps}), so it is the phase before it enlarged; raise Sampling steps "
                                  f"or the strength")
            self.result, self.done, self.pixels = out, phase, None
            pictures.show_preview(self.result)
            if phase is not self.phases[-1] and (settings.phase_images or settings.upscaler != LATENT):
                self.pixels = pictures.to_uint8(pictures.decode(p, self.result, settings))
                if settings.phase_images:
                    self.record.phase_images.append((self.iteration, phase, self.pixels))

    def start_of(self, phase):
        """The phase's starting latent: the last result enlarged (with region-wise noise when asked), or the picture
        that entered at this phase."""
        p, settings = self.p, self.settings
        start, picture = pictures.enlarge(p, self.result, phase, settings, self.pixels)
        if settings.region_noise and self.done is not None:
            if picture is None:
                picture = self.pixels if self.pixels is not None else pictures.to_uint8(
                    pictures.decode(p, self.result, settings))
            start = add_region_noise(start, picture, settings.region_noise, [int(s) for s in p.seeds], phase.index)
        return start

    def outcome(self):
        """What was made and what happened, in the infotext; the latest finished phase as the batch's samples."""
        params, done, phases = self.params, self.done, self.phases
        if self.stopped is not None:
            how = "skipped" if shared.state.skipped else "interrupted"
            what = f"phase {done.index}" if done is not None else "the picture"
            params[STOPPED_KEY] = f"{how} in phase {self.stopped.index} of {len(phases)}; the image is {what}"
        if done is not phases[-1]:
            params[OUTPUT_KEY] = size_of(done if done is not None else self.entry)
            # the returned image is that phase: it is not repeated among the earlier phases' images
            self.record.phase_images = [e for e in self.record.phase_images if (e[0], e[1]) != (self.iteration, done)]
        notes = self.notes + (self.view_prompts.notes if self.view_prompts is not None else [])
        if notes:
            params[NOTE_KEY] = "; ".join(notes)
            print(f"[DemoFusion] {params[NOTE_KEY]}")
        if done is phases[0]:
            return self.result
        return processing.DecodedSamples(list(pictures.decode(self.p, self.result, self.settings)))


def run_phase(host: Host, p, phase, window, settings: DemoFusionSettings, start: torch.Tensor,
              reference: torch.Tensor, c, uc, view_batch: ViewBatch, strength: float,
              view_prompts=None) -> tuple[torch.Tensor, int]:
    """One phase >= 2 from its enlarged starting latent: (its latent anchored to `reference`, UNet calls made)."""
    ps = new_phase(p, phase, window, settings, start, view_batch, strength)
    counter = CallCounter(None)
    with host.phase_patches(p, ps.z, ps.noise, c, uc):
        fused = FusedCall(ps.runner, counter, host.phase_control(p, phase), host.crop_columns(p.sd_model),
                          view_prompts)
        with host.fused_model(p, fused, window):
            out = sample_phase(p, ps, c, uc)
    print(f"[DemoFusion] phase {phase.index} at {size_of(phase)}: {ps.runner.evaluations} fused evaluations, "
          f"{counter.calls} UNet calls, {counter.rows} rows" + "".join(", " + e for e in fused.report()))
    return anchor(out, reference), counter.calls
