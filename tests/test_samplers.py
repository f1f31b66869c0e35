"""The driver's samplers speak k-diffusion's convention, and the driver takes any sampler function that does.

`kd_euler` and `kd_heun` below are written the way k_diffusion.sampling writes its samplers (s_in, to_d with
append_dims, the callback dict after the step's first call): stand-ins for the real ones, which need scipy,
torchsde and torchdiffeq.
"""
import functools
import inspect

import pytest
import torch

from demofusion_ext import DemoFusionSettings, DiscreteSchedule, PhaseRunner, run_demofusion
from demofusion_ext.standalone.samplers import SAMPLERS
from demofusion_ext.step_starts import StepStarts


def to_d(x, sigma, denoised):
    return (x - denoised) / sigma[(...,) + (None,) * (x.ndim - sigma.ndim)]


def kd_heun(model, x, sigmas, extra_args=None, callback=None, disable=None, second_order=True):
    """Heun's method (Karras et al. 2022, Algorithm 2 without churn); Euler with second_order=False."""
    extra_args = {} if extra_args is None else extra_args
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **extra_args)
        d = to_d(x, sigmas[i], denoised)
        if callback is not None:
            callback({'x': x, 'i': i, 'sigma': sigmas[i], 'sigma_hat': sigmas[i], 'denoised': denoised})
        dt = sigmas[i + 1] - sigmas[i]
        if sigmas[i + 1] == 0 or not second_order:
            x = x + d * dt
        else:
            x_2 = x + d * dt
            d_2 = to_d(x_2, sigmas[i + 1], model(x_2, sigmas[i + 1] * s_in, **extra_args))
            x = x + (d + d_2) / 2 * dt
    return x


kd_euler = functools.partial(kd_heun, second_order=False)


def toy(x, t):
    return 0.2 * x + 0.1 * torch.tanh(x.roll(1, -1)) * (t / 1000).view(-1, 1, 1, 1)


def run(sampler, **kw):
    kw = dict(dict(steps=4, seeds=[11], dtype=torch.float64), **kw)
    return run_demofusion(toy, (1, 4, 8, 8), DemoFusionSettings(scale=3), sampler=sampler, **kw)


def test_a_k_diffusion_function_gives_the_named_samplers_picture():
    for got, want in zip(run(kd_euler), run("euler"), strict=True):
        assert torch.equal(got, want)
    for got, want in zip(run(SAMPLERS["dpmpp_2m"]), run("dpmpp_2m"), strict=True):
        assert torch.equal(got, want)
    with pytest.raises(ValueError, match="unknown sampler"):
        run("heun")


def test_a_second_order_sampler_mixes_once_per_step_at_its_first_call(monkeypatch):
    """Heun calls the model twice per step, the second time at sigmas[i + 1] like the next step's first call: only
    calls_per_step tells them apart. The mix lands on the sampler's state at sigmas[0..n-1], once each."""
    mixes, mix = [], PhaseRunner.mix

    def spy(self, x, t, sigma=None, **kw):
        mixes.append((self.phase.index, sigma))
        return mix(self, x, t, sigma=sigma, **kw)
    monkeypatch.setattr(PhaseRunner, "mix", spy)
    out = run(kd_heun, calls_per_step=2, steps=5)
    assert len(out) == 3 and all(torch.isfinite(r).all() for r in out)
    sigmas = [float(s) for s in DiscreteSchedule.stable_diffusion().get_sigmas(5)[:-1]]
    assert mixes == [(k, s) for k in (2, 3) for s in sigmas]
    with pytest.raises(RuntimeError, match="more model calls per step"):
        run(kd_heun, steps=5)
    with pytest.raises(RuntimeError, match="fewer model calls per step"):
        run(kd_euler, calls_per_step=2)


def test_step_starts_counts_the_calls_of_a_step():
    starts = StepStarts(2)
    seen = []
    for calls in (2, 2, 1):             # Heun: the last step (to sigma 0) makes one call
        seen.append(starts.model_call())
        starts.callback({})
        seen += [starts.model_call() for _ in range(calls - 1)]
    assert seen == [True, False, True, False, True]


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_built_ins_call_model_and_callback_as_k_diffusion_does(name):
    params = list(inspect.signature(SAMPLERS[name]).parameters)
    assert params[:6] == ["model", "x", "sigmas", "extra_args", "callback", "disable"]
    sigmas = DiscreteSchedule.stable_diffusion().get_sigmas(4)
    x = torch.randn(2, 4, 6, 6, generator=torch.Generator().manual_seed(0)) * float(sigmas[0])
    events = []

    def model(x, sigma, **extra):
        events.append(("model", sigma.clone(), extra))
        return x * 0.5

    def callback(d):
        events.append(("callback", d["i"], set(d), d["x"] is state[-1]))
    state = [x]
    extra = {"noise_sampler": lambda s, s_next: torch.zeros_like(x)} if "noise_sampler" in params else {}
    SAMPLERS[name](model, x, sigmas, extra_args={"cond": 1}, callback=callback, **extra)
    assert [e[0] for e in events] == ["model", "callback"] * 4
    for i in range(4):
        (_, sigma, extra), (_, step, keys, _) = events[2 * i], events[2 * i + 1]
        assert sigma.shape == (2,) and sigma.dtype == x.dtype and torch.equal(sigma, sigmas[i].to(x.dtype).repeat(2))
        assert extra == {"cond": 1} and step == i and keys == {"x", "i", "sigma", "sigma_hat", "denoised"}
    assert events[1][3]                  # the first callback sees the state the sampler started from


def test_euler_ancestral_draws_its_noise_through_noise_sampler():
    sigmas = DiscreteSchedule.stable_diffusion().get_sigmas(4)[:3]          # two steps, neither into sigma 0
    x = torch.ones(1, 1, 2, 2, dtype=torch.float64)
    asked = []

    def noise_sampler(s, s_next):
        asked.append((float(s), float(s_next)))
        return torch.ones_like(x)

    def sample(**kw):
        return SAMPLERS["euler_a"](lambda x, sigma: torch.zeros_like(x), x, sigmas, noise_sampler=noise_sampler, **kw)
    noisy, quiet = sample(), sample(eta=0.0)
    assert asked == [(float(sigmas[i]), float(sigmas[i + 1])) for i in range(2)] * 2
    # x0 = 0: deterministic steps scale x by sigma_next / sigma; eta = 0 adds none of the drawn noise
    torch.testing.assert_close(quiet, x * float(sigmas[2] / sigmas[0]), atol=1e-12, rtol=1e-12)
    assert (noisy - quiet).min() > 0.1


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32])
def test_the_model_sees_the_schedules_own_timesteps(dtype):
    """The sampler hands sigma over rounded to the latent's dtype; t(sigma) and the noise level use the schedule's
    float64 value it came from."""
    schedule = DiscreteSchedule.stable_diffusion()
    seen = []

    def predict(x, t):
        seen.append(float(t[0]))
        return torch.zeros_like(x)
    run_demofusion(predict, (1, 4, 8, 8), DemoFusionSettings(scale=1), steps=6, sampler="euler", dtype=dtype,
                   schedule_kind="karras")
    want = [float(torch.tensor(schedule.sigma_to_t(float(s)), dtype=torch.float32))
            for s in schedule.get_sigmas(6, "karras")[:-1]]
    assert seen == want
