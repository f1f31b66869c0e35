"""The line the accordion shows under Scale: the output size and the model evaluations a generation will make, from the
engine's own plan (phases.py, views.py), so it cannot drift from what runs.

Counts are base-size views per image, for a sampler with one model evaluation per step (x2 rows with CFG):
phase 1 makes one per step; a phase k >= 2 makes its windows and dilated views at every step, except the last
step (at t = 0 the global weight c2 is 0, so its dilated views are not evaluated). In img2img a picture that
covers a later phase enters there, and the phases below it are skipped (phases.entry_phase).
"""
from __future__ import annotations

from ..phases import entry_phase, model_evaluations, plan_phases


def phase_one_steps(steps: int, denoising: float | None) -> int:
    """Steps of phase 1: all of them in txt2img; in img2img, the WebUI's int(strength x steps) + 1."""
    if denoising is None:
        return steps
    return min(steps, int(min(denoising, 0.999) * steps) + 1)


def plan_counts(width: int, height: int, steps: int, scale: float, stride: float,
                denoising: float | None = None, picture: tuple[int, int] | None = None) -> list[dict]:
    """Per phase: size in px, whether it is skipped, steps, views per step (local, global) and base-size views."""
    phases = plan_phases(height // 8, width // 8, scale)
    entry = entry_phase(phases, picture).index
    window = (height // 8, width // 8)
    out = []
    for phase, (n_local, n_global) in zip(phases, model_evaluations(phases, window, stride)):
        skipped = phase.index < entry
        # DemoFusion's own phases pass Sampling steps to the sampler, which stretches its schedule to run all of
        # them at any strength (the WebUI's img2img step rule); only the WebUI's own phase 1 runs a share
        n = 0 if skipped else phase_one_steps(steps, denoising) if phase.index == 1 else steps
        views = n * (n_local + n_global) - (n_global if n else 0)
        out.append({"width": phase.width * 8, "height": phase.height * 8, "skipped": skipped, "steps": n,
                    "local": n_local, "global": n_global, "views": views})
    return out


def plan_summary(width: int, height: int, steps: int, scale: float, stride: float,
                 denoising: float | None = None, picture: tuple[int, int] | None = None) -> str:
    counts = plan_counts(width, height, steps, scale, stride, denoising, picture)
    last = counts[-1]
    parts = []
    for i, c in enumerate(counts, start=1):
        if c["skipped"]:
            parts.append(f"phase {i}: skipped")
        elif c["global"] == 0:
            parts.append(f"phase {i}: {c['views']}")
        else:
            parts.append(f"phase {i}: {c['steps']} x ({c['local']} + {c['global']}) - {c['global']} = {c['views']}")
    skipped = sum(c["skipped"] for c in counts)
    entry = (f" The {picture[0]} x {picture[1]} picture enters at phase {skipped + 1} "
             f"({counts[skipped]['width']} x {counts[skipped]['height']})." if skipped else "")
    return (f"Output {last['width']} x {last['height']} px in {len(counts)} phases.{entry} Base-size model evaluations "
            f"(x2 with CFG): {', '.join(parts)}; total {sum(c['views'] for c in counts)}.")
