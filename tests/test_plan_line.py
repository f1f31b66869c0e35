"""The UI's plan line comes from the engine's plan: its counts are what a run makes."""
import pytest

from demofusion_ext import CallCounter, DemoFusionSettings, run_demofusion
from demofusion_ext.phases import entry_phase, plan_phases
from demofusion_ext.script.plan_line import phase_one_steps, plan_counts, plan_summary
from tiny_models import sd1_predict


@pytest.mark.parametrize("size,scale,stride", [((64, 64), 2, 0.5), ((64, 48), 2.5, 0.25), ((48, 64), 3, 0.5)])
def test_the_counts_are_the_views_a_run_evaluates(unet_sd1, text, size, scale, stride):
    width, height = size
    counts = plan_counts(width, height, 3, scale, stride)
    per_phase = []
    counted = CallCounter(sd1_predict(unet_sd1, text))

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


def test_a_picture_enters_at_the_largest_phase_it_covers():
    phases = plan_phases(16, 16, 3)                       # 128, 256, 384 px
    assert entry_phase(phases, None).index == 1           # txt2img
    assert entry_phase(phases, (128, 128)).index == 1     # not larger than Width x Height: as always
    assert entry_phase(phases, (255, 400)).index == 1     # covers 256 on one side only
    assert entry_phase(phases, (256, 256)).index == 2
    assert entry_phase(phases, (300, 1000)).index == 2
    assert entry_phase(phases, (4096, 4096)).index == 3   # the last phase still runs, on the picture itself
    wide = plan_phases(12, 16, 2.5)                       # 128x96, 256x192, 320x240
    assert entry_phase(wide, (320, 240)).index == 3 and entry_phase(wide, (319, 240)).index == 2


def test_the_line_shows_skipped_phases_and_counts_only_those_that_run():
    counts = plan_counts(128, 128, 4, 3, 0.5, denoising=0.5, picture=(256, 256))
    assert [c["skipped"] for c in counts] == [True, False, False]
    # DemoFusion's phases, the entry one too, ask the sampler for all steps (it stretches its img2img schedule)
    assert [c["steps"] for c in counts] == [0, 4, 4] and counts[0]["views"] == 0
    line = plan_summary(128, 128, 4, 3, 0.5, denoising=0.5, picture=(256, 256))
    assert line.startswith("Output 384 x 384 px in 3 phases. The 256 x 256 picture enters at phase 2 (256 x 256).")
    assert "phase 1: skipped, phase 2: 4 x (9 + 4) - 4 = 48, phase 3: 4 x (25 + 9) - 9 = 127; total 175." in line
    assert plan_summary(128, 128, 4, 3, 0.5, 0.5, picture=(128, 128)) == plan_summary(128, 128, 4, 3, 0.5, 0.5)
