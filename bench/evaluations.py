"""1. Model evaluations per generation at scales 2, 3, 4 against docs/ALGORITHM.md section 5's cost model."""
import argparse

import torch

from common import eps_predict, table, tiny_unet, write_section
from demofusion_ext import CallCounter, DemoFusionSettings, model_evaluations, plan_phases, run_demofusion

ap = argparse.ArgumentParser()
ap.add_argument("--steps", type=int, default=4)
ap.add_argument("--base", type=int, default=16, help="base latent size (cells)")
a = ap.parse_args()

unet, ctx = tiny_unet(), torch.randn(1, 8, 32)
rows = []
for scale in (2, 3, 4):
    counted = CallCounter(eps_predict(unet, ctx))
    with torch.no_grad():
        run_demofusion(counted, (1, 4, a.base, a.base), DemoFusionSettings(scale=scale), steps=a.steps, seeds=[0])
    per_step = model_evaluations(plan_phases(a.base, a.base, scale), (a.base, a.base), 0.5)
    model = sum(l + g for l, g in per_step)
    # the last step of each phase >= 2 is at t = 0, where c2 = 0: its global views are not evaluated
    exact = a.steps * model - sum(g for _, g in per_step)
    rows.append([scale, model, a.steps * model, exact, counted.rows, counted.calls,
                 "yes" if counted.rows == exact else "NO"])
write_section("1. Model evaluations", table(
    ["scale", "cost model per step (base-size views)", "x steps", "expected (t=0 skips globals)",
     "evaluated views", "UNet calls", "equal"], rows) + f"""

{a.steps} steps, no CFG (one row per view; CFG doubles rows, not calls), view batch size 16. The cost model
is (2k-1)^2 local + k^2 global views per step of phase k, summed over phases 1..S (14, 48, 113). The engine
evaluates exactly that, except that at the schedule's last step (t = 0, so c2 = cos-weight 0) the dilated views
would get weight 0 and are skipped: no wasted evaluation.""")
