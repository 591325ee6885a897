"""DPMSolverSDEScheduler: numpy vs diffusers, both stepping with the same Brownian-tree noise.

diffusers draws its noise from torchsde's BrownianInterval, we draw ours from edge_sched.brownian:
same distribution, different bits. And a Brownian path is rough (|W(t + d) - W(t)| ~ sqrt(d)), so
even the same tree queried at noise levels one float32 ulp apart (torch's SLEEF log/exp vs ours)
gives noise ~1e-4 apart. For parity the test therefore records the noise diffusers draws (stock
diffusers, real torchsde) with the (sigma, sigma_next) it was drawn for, and replays it into our
scheduler in place of our sampler, asserting that we ask for it at the same noise levels (within
1e-6), in the same order, as many times. The Brownian noise itself is tested on its own terms in
tests/schedulers/test_brownian.py, and end to end below (test_same_seed_same_samples).
"""

import itertools

import numpy as np
import pytest
import torch

import diffusers
import diffusers.schedulers.scheduling_dpmsolver_sde as diffusers_sde
import edge_sched.schedulers.dpmsolver_sde as ours_sde
from edge_sched.schedulers import SchedulerNotReadyError
from edge_sched.schedulers.dpmsolver_sde import DPMSolverSDEScheduler

from .harness import RTOL, check_parity, initial_sample, model_fn

NAME = "DPMSolverSDEScheduler"
SD = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", noise_sampler_seed=7)
STEPS = (1, 2, 3, 10, 25, 50)
SPACINGS = ("linspace", "leading", "trailing")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # diffusers' numpy-on-tensor calls

RECORDED: list = []  # (sigma, sigma_next, noise) of the latest diffusers sampler, in call order


class _RecordingSampler(diffusers_sde.BrownianTreeNoiseSampler):
    """diffusers' own sampler (torchsde), noting what it returns."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        RECORDED.clear()

    def __call__(self, sigma, sigma_next):
        noise = super().__call__(sigma, sigma_next)
        RECORDED.append((float(sigma), float(sigma_next), noise.numpy().copy()))
        return noise


class _ReplayingSampler:
    """Stands in for our sampler: diffusers' recorded noise, checked against our queries."""

    def __init__(self, shape, sigma_min, sigma_max, seed):
        self.record, self.calls = list(RECORDED), 0

    def __call__(self, sigma, sigma_next):
        assert self.calls < len(self.record), "we draw noise more often than diffusers"
        ref_sigma, ref_next, noise = self.record[self.calls]
        np.testing.assert_allclose([float(sigma), float(sigma_next)], [ref_sigma, ref_next], rtol=1e-6)
        self.calls += 1
        return noise


@pytest.fixture(autouse=True)
def same_noise(monkeypatch):
    monkeypatch.setattr(diffusers_sde, "BrownianTreeNoiseSampler", _RecordingSampler)
    monkeypatch.setattr(ours_sde, "BrownianTreeNoiseSampler", _ReplayingSampler)


GRID = [
    dict(SD, prediction_type=p, timestep_spacing=s, **sig)
    for p, s, sig in itertools.product(
        ("epsilon", "v_prediction"), SPACINGS, ({}, {"use_karras_sigmas": True}, {"use_exponential_sigmas": True})
    )
] + [
    dict(SD, use_beta_sigmas=True),
    dict(noise_sampler_seed=3),  # the class defaults (linear betas 0.00085..0.012)
    dict(SD, beta_schedule="squaredcos_cap_v2"),
    dict(SD, steps_offset=1, timestep_spacing="leading"),
    dict(trained_betas=[0.0001 + 0.0002 * i for i in range(100)], num_train_timesteps=100, noise_sampler_seed=1),
]


def _id(config):
    return ",".join(f"{k}={v}" for k, v in config.items() if k not in SD or config[k] != SD[k])[:80] or "sd"


@pytest.mark.parametrize("steps", STEPS)
@pytest.mark.parametrize("config", GRID, ids=_id)
def test_grid(config, steps):
    check_parity(NAME, config, {"num_inference_steps": steps})


def test_s_noise_and_train_range():
    check_parity(NAME, SD, {"num_inference_steps": 10}, step_kwargs={"s_noise": 0.5})
    check_parity(NAME, SD, {"num_inference_steps": 10, "num_train_timesteps": 500})


def test_noise_draws_match_diffusers_in_number():
    # two draws per step but the last (a plain Euler step); the replay checks each draw's levels
    check_parity(NAME, SD, {"num_inference_steps": 6})
    assert len(RECORDED) == 10


def test_fresh_and_set_schedule_match_diffusers():
    for cfg in (SD, dict(SD, use_karras_sigmas=True)):
        ours, ref = DPMSolverSDEScheduler(**cfg), diffusers.DPMSolverSDEScheduler(**cfg)
        for steps in (None, 1, 4, 25):
            if steps is not None:
                ours.set_timesteps(steps)
                ref.set_timesteps(steps)
            # relative to max(1, |t|), as the harness compares fractional timesteps
            np.testing.assert_allclose(ours.timesteps, ref.timesteps.numpy(), rtol=RTOL, atol=RTOL)
            assert ours.timesteps.dtype == ref.timesteps.numpy().dtype == np.float64
            np.testing.assert_allclose(ours.sigmas, ref.sigmas.numpy(), rtol=RTOL)
            assert ours.init_noise_sigma == pytest.approx(float(ref.init_noise_sigma), rel=RTOL)
        assert ours.order == ref.order == 2


@pytest.mark.parametrize("spacing", SPACINGS)
def test_add_noise(spacing):
    ours = DPMSolverSDEScheduler(**SD, timestep_spacing=spacing)
    ref = diffusers.DPMSolverSDEScheduler(**SD, timestep_spacing=spacing)
    ours.set_timesteps(20)
    ref.set_timesteps(20)
    rng = np.random.default_rng(1)
    x0 = rng.standard_normal((2, 4, 8, 8)).astype(np.float32)
    noise = rng.standard_normal((2, 4, 8, 8)).astype(np.float32)
    idx = [0, 12]  # a first-call timestep and a repeated one
    expected = ref.add_noise(torch.from_numpy(x0), torch.from_numpy(noise), ref.timesteps[idx]).numpy()
    np.testing.assert_allclose(ours.add_noise(x0, noise, ours.timesteps[idx]), expected, rtol=RTOL, atol=RTOL)
    ours.set_begin_index(6)
    ref.set_begin_index(6)
    expected = ref.add_noise(torch.from_numpy(x0), torch.from_numpy(noise), ref.timesteps[idx]).numpy()
    np.testing.assert_allclose(ours.add_noise(x0, noise, ours.timesteps[idx]), expected, rtol=RTOL, atol=RTOL)


def test_same_seed_same_samples(monkeypatch):
    monkeypatch.undo()  # our own Brownian noise, end to end

    def run(seed, shape=(2, 4, 8, 8)):
        s = DPMSolverSDEScheduler(**dict(SD, noise_sampler_seed=seed))
        s.set_timesteps(5)
        x = initial_sample(0, shape) * np.float32(s.init_noise_sigma)
        for t in s.timesteps:
            x = s.step(model_fn(s.scale_model_input(x, t), t), t, x).prev_sample
        return x

    np.testing.assert_array_equal(run(11), run(11))
    assert not np.array_equal(run(11), run(12))


def test_return_dict_false(monkeypatch):
    monkeypatch.undo()  # no reference run: our own noise
    s = DPMSolverSDEScheduler(**SD)
    s.set_timesteps(5)
    x = np.ones((1, 4, 8, 8), np.float32)
    out = s.step(np.zeros_like(x), s.timesteps[0], x, return_dict=False)
    assert isinstance(out, tuple) and len(out) == 2
    np.testing.assert_array_equal(out[1], x)


def test_bad_input(monkeypatch):
    monkeypatch.undo()  # no reference run: our own noise
    with pytest.raises(ValueError, match=r"beta_schedule.*'linear'.*'laplace'"):
        DPMSolverSDEScheduler(beta_schedule="laplace")
    with pytest.raises(ValueError, match="Only one of"):
        DPMSolverSDEScheduler(use_karras_sigmas=True, use_exponential_sigmas=True)
    with pytest.raises(ValueError, match="prediction_type.*'flow'"):
        DPMSolverSDEScheduler(prediction_type="flow")
    with pytest.raises(ValueError, match="timestep_spacing.*'ddim'"):
        DPMSolverSDEScheduler(timestep_spacing="ddim")
    s = DPMSolverSDEScheduler()
    with pytest.raises(ValueError, match="at least 1"):
        s.set_timesteps(0)
    x = np.ones((1, 4, 8, 8), np.float32)
    with pytest.raises(ValueError, match="not in this scheduler's timesteps"):
        s.step(x, 1.25, x)
    t = DPMSolverSDEScheduler(prediction_type="sample")
    t.set_timesteps(4)
    with pytest.raises(NotImplementedError, match="sample"):
        t.step(x, t.timesteps[0], x)
    with pytest.raises(SchedulerNotReadyError):
        object.__new__(DPMSolverSDEScheduler).step(x, 1.0, x)
