"""The UI's plan line comes from the engine's plan: its counts are what a run makes."""
import pytest
import torch

from demofusion_ext import DemoFusionSettings, EvalCounter, run_demofusion
from demofusion_ext.plan_summary import phase_one_steps, plan_counts, plan_summary
from tiny_models import sd1_predict


@pytest.mark.parametrize("size,scale,stride", [((64, 64), 2, 0.5), ((64, 48), 2.5, 0.25), ((48, 64), 3, 0.5)])
def test_the_counts_are_the_views_a_run_evaluates(unet_sd1, text, size, scale, stride):
    width, height = size
    counts = plan_counts(width, height, 3, scale, stride)
    per_phase = []
    counted = EvalCounter(sd1_predict(unet_sd1, text))

    def on_phase(phase, latent):
        per_phase.append(counted.rows)
    run_demofusion(counted, (1, 4, height // 8, width // 8), DemoFusionSettings(scale=scale, stride=stride), steps=3,
                   seeds=[0], on_phase=on_phase)
    rows = [b - a for a, b in zip([0] + per_phase, per_phase)]
    assert rows == [c["views"] for c in counts]
    assert [(c["width"], c["height"]) for c in counts][-1] == (int(scale * (width // 8) + 0.5) * 8,
                                                              int(scale * (height // 8) + 0.5) * 8)


def test_the_line_names_size_phases_and_totals():
    line = plan_summary(128, 128, 4, 2, 0.5)
    assert line == ("Output 256 x 256 px in 2 phases. Base-size model evaluations (x2 with CFG): phase 1: 4, "
                    "phase 2: 4 x (9 + 4) - 4 = 48; total 52.")
    assert plan_summary(68, 60, 4, 2, 0.5).startswith("Output 128 x 112 px")     # the WebUI drops 4 px of each side


def test_img2img_phase_one_runs_the_webuis_share_of_the_steps():
    assert phase_one_steps(20, None) == 20
    assert phase_one_steps(20, 0.75) == 16 and phase_one_steps(4, 1.0) == 4 and phase_one_steps(4, 0.0) == 1
