"""Per-view prompts (AccDiffusion) in the WebUI, both hosts: phase 1 records per-token cross-attention, and each
local window of a later phase gets the cond rows of a text made of the prompt words its area drew.

The host adapters differ only in how a model call's rows are told apart (`RowTracker`: A1111 by position within a
CFG evaluation; Forge by `cond_or_uncond`), in the UNet module, and in the text engine; everything else is here.
A prompt the word model cannot follow, or a view text whose tokens do not come back as the kept words, uses the
full prompt: logged once, never an error.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from modules import devices, prompt_parser, shared

from ..anti_repetition.attention_capture import AttentionCapture
from ..anti_repetition.prompt_masks import window_word_sets, word_maps
from ..anti_repetition.prompt_words import chunk_content, flat_ids, kept_token_weights, prompt_words, render, round_trip_ok


class RowTracker:
    """A1111: which image each cond row of a UNet call belongs to. The CFG denoiser evaluates, per evaluation,
    the cond rows (one per image, without AND) before the uncond rows, in one call or consecutive ones, and counts
    evaluations in `step`: the position within the evaluation tells the role."""

    def __init__(self, p, images: int):
        self.p, self.images, self.step, self.offset = p, images, None, 0

    def roles(self, n: int) -> list[int | None]:
        step = getattr(getattr(self.p.sampler, "model_wrap_cfg", None), "step", None)
        if step != self.step:
            self.step, self.offset = step, 0
        out = [self.offset + i if self.offset + i < self.images else None for i in range(n)]
        self.offset += n
        return out


def chunk_roles(chunks: list, n: int) -> list[int | None]:
    """Forge: a call is made of chunks (0 = cond, 1 = uncond) of n / len(chunks) image rows each."""
    b = n // len(chunks)
    return [j if k == 0 else None for k in chunks for j in range(b)]


def text_engine(model):
    """The CLIP-L text engine whose tokenization places the tokens of the UNet's context (both hosts, SD1 and SDXL)."""
    for name in ("text_processing_engine_l", "text_processing_engine"):          # Forge SDXL, SD1
        if hasattr(model, name):
            return getattr(model, name)
    embedders = getattr(getattr(model, "conditioner", None), "embedders", None)   # A1111 SDXL
    return embedders[0] if embedders else model.cond_stage_model                  # A1111 SD1


def segments(engine, line: str) -> list:
    """The (text, weight) segments the engine's own tokenize_line reads the line as."""
    if hasattr(engine, "emphasis") and not hasattr(engine, "hijack"):              # Forge's classic engine
        from backend.text_processing import parsing
        return [tuple(s) for s in parsing.parse_prompt_attention(line, engine.emphasis.name)]
    if shared.opts.emphasis == "None":
        return [(line, 1.0)]
    return [tuple(s) for s in prompt_parser.parse_prompt_attention(line)]


def flat_tokens(engine, line: str) -> tuple[list[int], list[float], list[int]]:
    """(ids, multipliers, context positions) of the line's content tokens, as the engine chunks them."""
    chunks, _ = engine.tokenize_line(line)
    positions, ids = chunk_content([c.tokens for c in chunks], engine.id_start, engine.id_end)
    length = len(chunks[0].tokens) if chunks else 77
    weights = [chunks[t // length].multipliers[t % length] for t in positions]
    return ids, weights, positions


@dataclass
class ImageWords:
    """One image's prompt as words, and their phase-1 maps."""
    segments: list
    words: list
    maps: torch.Tensor           # [words, h, w]


@dataclass
class PhaseViewPrompts:
    """The cond rows of one phase's local windows (by unjittered window index), per image; None = the full prompt."""
    rows: list[dict[int, tuple]]              # per window: {image: (crossattn [T, C], vector [D] | None)}
    encoded: int = 0
    capture_bytes: int = 0
    misfits: int = 0            # cond rows that kept the full prompt: the view text's tokens did not fit the call's

    def describe(self) -> str:
        changed = sum(1 for r in self.rows if r)
        misfit = f", {self.misfits} row(s) kept the full prompt (token count)" if self.misfits else ""
        return (f"per-view prompts: {changed} of {len(self.rows)} windows, {self.encoded} text(s) encoded, "
                f"phase-1 capture {self.capture_bytes / 2 ** 20:.2f} MiB{misfit}")

    def apply(self, cross: torch.Tensor, vector: torch.Tensor | None, windows: list[int | None], rows: int,
              roles: list[int | None], keep_columns: int | None = None) -> None:
        """Write the view texts into the cond rows of a view-major call (`windows`: each view's window index,
        None for global views); `keep_columns`: the vector's trailing columns left alone (SDXL crop, target size).
        A view text whose tokens cannot fill the call's context leaves the full prompt (counted in `misfits`)."""
        for v, window in enumerate(windows):
            if window is None:
                continue
            for j, image in enumerate(roles):
                entry = self.rows[window].get(image) if image is not None else None
                if entry is None:
                    continue
                text, vec = entry
                r = v * rows + j
                t, tv = cross.shape[1], text.shape[0]
                head = 1 if t % tv == 1 else 0      # sd-webui-controlnet's cond/uncond mark token leads its context
                if (t - head) % tv:
                    self.misfits += 1
                    continue
                cross[r, head:] = text.to(cross).repeat((t - head) // tv, 1)   # whole chunks repeated attend the same
                if vector is not None and vec is not None:
                    end = vector.shape[1] - (keep_columns or 0)
                    vector[r, :end] = vec[:end].to(vector)


def prompt_word_model(engine, text: str, steps: int):
    """(line, segments, words, context positions) of a prompt as the engine tokenizes it, or why it cannot be
    followed word by word (then every view keeps the full prompt). LoRA tags are already gone from `text`
    (the WebUI strips them before sampling)."""
    if len(prompt_parser.get_multicond_prompt_list([text])[1]) > 1:
        return "a prompt with AND keeps the full prompt in every view"
    schedules = prompt_parser.get_learned_conditioning_prompt_schedules([text], steps)[0]
    if len(schedules) > 1:
        return "a prompt with prompt editing or alternation keeps the full prompt in every view"
    line = schedules[0][1]
    segs = segments(engine, line)
    words = prompt_words(segs, lambda s: engine.tokenize([s])[0])
    try:
        ids, _, positions = flat_tokens(engine, line)
    except ValueError:
        words = None
    if words is None or flat_ids(words) != ids:
        return "the prompt's tokens could not be matched to its words (an embedding?); it stays whole in every view"
    return line, segs, words, positions


class ViewPrompts:
    """One image batch's per-view prompts: capture in phase 1, then `for_phase` before each later phase."""

    def __init__(self, p, settings, prompts: list[str]):
        self.p, self.settings, self.prompts = p, settings, list(prompts)
        self.engine = text_engine(p.sd_model)
        self.capture: AttentionCapture | None = None
        self.images: list[ImageWords | None] = []
        self.notes: list[str] = []

    def phase1_maps(self, image: int, latent_hw) -> torch.Tensor | None:
        """[context tokens, h, w] phase-1 maps of one image."""
        return self.capture.maps(image, latent_hw) if self.capture is not None else None

    def unet(self):
        model = self.p.sd_model
        objects = getattr(model, "forge_objects", None)
        return objects.unet.model.diffusion_model if objects is not None else model.model.diffusion_model

    @contextlib.contextmanager
    def capturing(self, latent_hw: tuple[int, int]):
        """Phase 1 with the attention hooks; nothing stays registered afterwards."""
        current = {"roles": None}
        capture = AttentionCapture(lambda n: current["roles"] if current["roles"] and len(current["roles"]) == n
                                   else [None] * n, target_queries=(latent_hw[0] // 4) * (latent_hw[1] // 4))
        tracker = RowTracker(self.p, len(self.prompts))

        def roles(_module, args, kwargs):
            x = args[0] if args else kwargs.get("x")
            options = kwargs.get("transformer_options") or {}
            chunks = options.get("cond_or_uncond")
            current["roles"] = chunk_roles(chunks, x.shape[0]) if chunks else tracker.roles(x.shape[0])
        unet = self.unet()
        handle = unet.register_forward_pre_hook(roles, with_kwargs=True)
        try:
            with capture.hooked(unet):
                yield capture
        finally:
            handle.remove()
        self.capture = capture

    def finish(self, latent_hw: tuple[int, int]):
        """The words and word maps of every image, after phase 1."""
        for b, text in enumerate(self.prompts):
            self.images.append(self._image_words(b, text, latent_hw))

    def _note(self, text: str):
        if text not in self.notes:
            self.notes.append(text)
            print(f"[DemoFusion] per-view prompts: {text}")

    def _image_words(self, b: int, text: str, latent_hw) -> ImageWords | None:
        found = prompt_word_model(self.engine, text, self.p.steps)
        if isinstance(found, str):
            return self._note(found)
        line, segs, words, positions = found
        maps = self.phase1_maps(b, latent_hw)
        if maps is None:
            return self._note("no cross-attention was recorded in phase 1")
        if max(positions, default=-1) >= maps.shape[0]:
            return self._note("the phase-1 maps are shorter than the prompt; it stays whole in every view")
        spans = [list(range(w.start, w.stop)) for w in words]
        return ImageWords(segs, words, word_maps(maps[positions], spans))

    def for_phase(self, phase, window: tuple[int, int]) -> PhaseViewPrompts | None:
        """The per-window cond rows of `phase` (encoded here, before the phase samples)."""
        if not any(self.images):
            return None
        threshold = self.settings.prompt_keep_threshold
        texts: dict[str, int] = {}
        plan = []
        fallbacks = []
        for b, image in enumerate(self.images):
            if image is None:
                plan.append(None)
                continue
            _, kept = window_word_sets(image.maps, phase.shape, window, self.settings.stride, threshold)
            per_window = []
            for k in kept:
                if len(k) == len(image.words):
                    per_window.append(None)                # every word: the original rows
                    continue
                view_text = render(image.segments, image.words, k, emphasis=shared.opts.emphasis != "None")
                want_ids, want_weights = kept_token_weights(image.segments, image.words, k)
                got_ids, got_weights, _ = flat_tokens(self.engine, view_text) if view_text else ([], [], [])
                if not round_trip_ok(want_ids, want_weights, got_ids, got_weights):
                    fallbacks.append(view_text)
                    per_window.append(None)
                    continue
                texts.setdefault(view_text, len(texts))
                per_window.append(view_text)
            plan.append(per_window)
        if fallbacks:
            self._note(f"{len(fallbacks)} view text(s) did not tokenize back to their words (e.g. "
                       f"{fallbacks[0]!r}); those views keep the full prompt")
        encoded = self._encode(list(texts)) if texts else {}
        n_windows = max((len(w) for w in plan if w), default=0)
        rows = [{} for _ in range(n_windows)]
        for b, per_window in enumerate(plan):
            for i, text in enumerate(per_window or []):
                if text is not None:
                    rows[i][b] = encoded[text]
        return PhaseViewPrompts(rows, encoded=len(texts), capture_bytes=self.capture.nbytes if self.capture is not None else 0)

    def _encode(self, texts: list[str]) -> dict[str, tuple]:
        """Each distinct view text once, in one batch, as the WebUI encodes prompts."""
        p = self.p
        with devices.autocast(), torch.no_grad():
            cond = p.sd_model.get_learned_conditioning(prompt_parser.SdConditioning(texts, width=p.width,
                                                                                     height=p.height))
        if isinstance(cond, dict):
            return {t: (cond["crossattn"][i], cond["vector"][i]) for i, t in enumerate(texts)}
        return {t: (cond[i], None) for i, t in enumerate(texts)}
