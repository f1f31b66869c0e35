"""The line the accordion shows under Scale: the output size and the model evaluations a generation will make, from the
engine's own plan (phases.py, views.py), so it cannot drift from what runs.

Counts are base-size views per image, for a sampler with one model evaluation per step (x2 rows with CFG):
phase 1 makes one per step; a phase k >= 2 makes its windows and dilated views at every step, except the last
step (at t = 0 the global weight c2 is 0, so its dilated views are not evaluated). In img2img a picture that
covers a later phase enters there, and the phases below it are skipped (phases.entry_phase).
"""
from __future__ import annotations

from ..global_cutoff import views_evaluated
from ..phases import entry_phase, model_evaluations, phase_timesteps, plan_phases, tail_steps


def phase_one_steps(steps: int, denoising: float | None) -> int:
    """Steps of phase 1: all of them in txt2img; in img2img, the WebUI's int(strength x steps) + 1."""
    return steps if denoising is None else tail_steps(steps, denoising)


def plan_counts(width: int, height: int, steps: int, scale: float, stride: float,
                denoising: float | None = None, picture: tuple[int, int] | None = None, *,
                phase_denoise: float = 1.0, relay: bool = False, global_cutoff: float = 0.0,
                cosine_scale_2: float = 1.0) -> list[dict]:
    """Per phase: size in px, whether it is skipped, steps, views per step (local, global), the steps that evaluate
    each, and base-size views. `relay` (Fast): the enlarged phases run the last `phase_denoise` share of the steps."""
    phases = plan_phases(height // 8, width // 8, scale)
    entry = entry_phase(phases, picture).index
    window = (height // 8, width // 8)
    out = []
    for phase, (n_local, n_global) in zip(phases, model_evaluations(phases, window, stride)):
        skipped = phase.index < entry
        if skipped or phase.index == 1:
            n = 0 if skipped else phase_one_steps(steps, denoising)
            ts = []
            local_steps, global_steps = n, 0
        else:
            # the phase the picture enters at denoises at the user's strength, enlarged ones at the phase strength
            strength = (denoising if phase.index == entry else phase_denoise * (denoising or 1.0))
            ts = phase_timesteps(steps, strength, relay)
            n = len(ts)
            local_steps = sum(views_evaluated(t, 1, 0, cosine_scale_2, global_cutoff) for t in ts)
            global_steps = sum(views_evaluated(t, 0, 1, cosine_scale_2, global_cutoff) for t in ts)
        views = local_steps * n_local + global_steps * n_global
        out.append({"width": phase.width * 8, "height": phase.height * 8, "skipped": skipped, "steps": n,
                    "local": n_local, "global": n_global, "local_steps": local_steps, "global_steps": global_steps,
                    "views": views})
    return out


def _phase_text(i: int, c: dict) -> str:
    if c["skipped"]:
        return f"phase {i}: skipped"
    if c["global"] == 0:
        return f"phase {i}: {c['views']}"
    n, ls, gs = c["steps"], c["local_steps"], c["global_steps"]
    if ls == n and gs == n - 1:          # the exact pattern: every step but the last (t = 0) evaluates both
        return f"phase {i}: {n} x ({c['local']} + {c['global']}) - {c['global']} = {c['views']}"
    return f"phase {i}: {ls} x {c['local']} + {gs} x {c['global']} = {c['views']}"


def plan_summary(width: int, height: int, steps: int, scale: float, stride: float,
                 denoising: float | None = None, picture: tuple[int, int] | None = None, **fast) -> str:
    """The line; `fast` as plan_counts' keywords. Where they change the count, it names how many fewer than Exact."""
    counts = plan_counts(width, height, steps, scale, stride, denoising, picture, **fast)
    last = counts[-1]
    parts = [_phase_text(i, c) for i, c in enumerate(counts, start=1)]
    skipped = sum(c["skipped"] for c in counts)
    entry = (f" The {picture[0]} x {picture[1]} picture enters at phase {skipped + 1} "
             f"({counts[skipped]['width']} x {counts[skipped]['height']})." if skipped else "")
    total = sum(c["views"] for c in counts)
    exact = sum(c["views"] for c in plan_counts(width, height, steps, scale, stride, denoising, picture))
    fewer = (f" {exact - total} fewer than Exact ({100 * (exact - total) / exact:.0f}%; the global-view cut-off "
             f"counted on the Automatic schedule)." if fast and total != exact else "")
    return (f"Output {last['width']} x {last['height']} px in {len(counts)} phases.{entry} Base-size model evaluations "
            f"(x2 with CFG): {', '.join(parts)}; total {total}.{fewer}")
