"""DPMSolverSDEScheduler: numpy vs diffusers, each side drawing its own Brownian noise from the same seed.

diffusers draws through torchsde's BrownianInterval, we through edge_sched.brownian (no torch): the
same numbers for the same ``noise_sampler_seed``. The parity rule for query sigmas that torch's
float32 exp / log put one ulp (and one torchsde grid point) away is brownian_parity's.
"""

import itertools

import numpy as np
import pytest
import torch

import diffusers
from edge_sched.schedulers import SchedulerNotReadyError
from edge_sched.schedulers.dpmsolver_sde import DPMSolverSDEScheduler

from .brownian_parity import check_brownian_parity
from .harness import RTOL, initial_sample, model_fn

NAME = "DPMSolverSDEScheduler"
SD = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", noise_sampler_seed=7)
STEPS = (1, 2, 3, 10, 25, 50)
SPACINGS = ("linspace", "leading", "trailing")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning",  # diffusers; torchsde
                                  "ignore:divide by zero:RuntimeWarning")  # correctly rounded log(0)


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
    dict(SD, noise_sampler_seed=[5, 2**40 + 3]),  # one tree per batch item (diffusers' BatchedBrownianTree)
    dict(SD, noise_sampler_seed=2**63 - 2, use_karras_sigmas=True),
]


def _id(config):
    return ",".join(f"{k}={v}" for k, v in config.items() if k not in SD or config[k] != SD[k])[:80] or "sd"


@pytest.mark.parametrize("steps", STEPS)
@pytest.mark.parametrize("config", GRID, ids=_id)
def test_grid(config, steps):
    check_brownian_parity(NAME, config, {"num_inference_steps": steps})


def test_s_noise_and_train_range():
    check_brownian_parity(NAME, SD, {"num_inference_steps": 10}, step_kwargs={"s_noise": 0.5})
    check_brownian_parity(NAME, SD, {"num_inference_steps": 10, "num_train_timesteps": 500})


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


def test_same_seed_same_samples():
    def run(seed, shape=(2, 4, 8, 8)):
        s = DPMSolverSDEScheduler(**dict(SD, noise_sampler_seed=seed))
        s.set_timesteps(5)
        x = initial_sample(0, shape) * np.float32(s.init_noise_sigma)
        for t in s.timesteps:
            x = s.step(model_fn(s.scale_model_input(x, t), t), t, x).prev_sample
        return x

    np.testing.assert_array_equal(run(11), run(11))
    assert not np.array_equal(run(11), run(12))


def test_return_dict_false():
    s = DPMSolverSDEScheduler(**SD)
    s.set_timesteps(5)
    x = np.ones((1, 4, 8, 8), np.float32)
    out = s.step(np.zeros_like(x), s.timesteps[0], x, return_dict=False)
    assert isinstance(out, tuple) and len(out) == 2
    np.testing.assert_array_equal(out[1], x)


def test_bad_input():
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
