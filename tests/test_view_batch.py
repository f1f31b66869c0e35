"""Out of memory: a model call with too many views is retried in smaller batches, the smaller size is kept for the
rest of the generation, the user is told once, and the prediction is the same as without the limit.

The probe raises torch.OutOfMemoryError (the class torch.cuda.OutOfMemoryError is) above a number of rows. On the
CPU the tiny UNet's float32 result depends slightly on the batch size (measured: up to 1.1e-6 between batches of
16 and 3 views), so a retried result is compared exactly with an unrestricted one at the batch it shrank to, and
within 1e-5 with an unrestricted one at the full batch.
"""
import pytest
import torch

from demofusion_ext import DemoFusionSettings, ViewBatch, fused_prediction, jitter_rng, make_layout, run_demofusion
from demofusion_ext import is_out_of_memory
from tiny_models import sd1_predict


class Probe:
    """A real model behind a memory limit of `limit` rows per call; records the rows of every call."""

    def __init__(self, fn, limit=None):
        self.fn, self.limit, self.rows = fn, limit, []

    def __call__(self, x, *args, **kwargs):
        self.rows.append(x.shape[0])
        if self.limit is not None and x.shape[0] > self.limit:
            raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {x.shape[0]} rows")
        return self.fn(x, *args, **kwargs)

    @property
    def failed(self):
        return [r for r in self.rows if r > self.limit]


@pytest.fixture(scope="module")
def model(unet_sd1, text):
    def predict(v):
        return unet_sd1(v, torch.full((v.shape[0],), 500.0), encoder_hidden_states=text.repeat(v.shape[0], 1, 1)).sample
    return predict


@pytest.fixture(scope="module")
def case():
    x = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(2))
    return x, make_layout(16, 16, (8, 8), 0.5, 2, jitter_rng(0, 2, 0))        # 9 windows + 4 sub-grids


def test_the_cuda_error_is_torchs():
    assert torch.cuda.OutOfMemoryError is torch.OutOfMemoryError
    assert is_out_of_memory(RuntimeError("MPS backend out of memory")) and not is_out_of_memory(RuntimeError("x"))


def test_fused_prediction_shrinks_once_and_keeps_the_size(model, case, capsys):
    x, layout = case
    fuse = lambda predict, batch: fused_prediction(predict, x, layout, c2=0.4, blur_sigma=0.8, view_batch_size=batch)
    batch, probe = ViewBatch(16), Probe(model, limit=8)         # 2 rows per view: 4 views fit
    got = fuse(probe, batch)
    assert probe.rows == [26, 12, 6, 6, 6, 6, 2] and batch.size == 3      # 13 views -> 6 -> 3
    out = capsys.readouterr().out
    assert out.count("out of memory") == 1 and "with 13 views" in out and "set View batch size to 3 " in out
    assert torch.equal(got, fuse(model, 3))
    torch.testing.assert_close(got, fuse(model, 16), atol=1e-5, rtol=1e-5)
    probe.rows.clear()
    again = fuse(probe, batch)                                   # the next evaluation starts at the smaller size
    assert probe.rows == [6, 6, 6, 6, 2] and torch.equal(again, got)
    probe.limit, probe.rows = 2, []                              # memory got tighter: shrink again, say nothing
    fuse(probe, batch)
    assert probe.rows[:2] == [6, 2] and batch.size == 1 and capsys.readouterr().out == ""


def test_a_run_shrinks_in_its_first_evaluation_only(unet_sd1, text, capsys):
    settings = DemoFusionSettings(scale=2, view_batch_size=16)
    probe = Probe(sd1_predict(unet_sd1, text), limit=4)
    got = run_demofusion(probe, (1, 4, 8, 8), settings, steps=2, seeds=[7])
    assert probe.failed == [13, 6]                                # both in the first fused evaluation
    assert max(probe.rows[probe.rows.index(6) + 1:]) == 3        # every later call at the smaller size
    assert capsys.readouterr().out.count("out of memory") == 1
    small = run_demofusion(sd1_predict(unet_sd1, text), (1, 4, 8, 8), DemoFusionSettings(scale=2, view_batch_size=3),
                           steps=2, seeds=[7])
    full = run_demofusion(sd1_predict(unet_sd1, text), (1, 4, 8, 8), settings, steps=2, seeds=[7])
    assert torch.equal(got[-1], small[-1])
    torch.testing.assert_close(got[-1], full[-1], atol=1e-5, rtol=1e-5)


def test_a_single_view_that_does_not_fit_raises(model, case):
    x, layout = case
    probe = Probe(model, limit=1)                 # one view is 2 rows
    with pytest.raises(torch.OutOfMemoryError):
        fused_prediction(probe, x, layout, c2=0.4, blur_sigma=0.8, view_batch_size=ViewBatch(16, log=lambda m: None))
    assert probe.rows == [26, 12, 6, 2]


@pytest.mark.parametrize("error", [ValueError("bad conditioning"), RuntimeError("mat1 and mat2 shapes differ")])
def test_other_errors_propagate_unchanged(model, case, error, capsys):
    x, layout = case

    def broken(v):
        calls.append(v.shape[0])
        raise error
    calls, batch = [], ViewBatch(16)
    with pytest.raises(type(error)) as caught:
        fused_prediction(broken, x, layout, c2=0.4, blur_sigma=0.8, view_batch_size=batch)
    assert caught.value is error and calls == [26] and batch.size == 16 and capsys.readouterr().out == ""
