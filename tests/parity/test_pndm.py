"""PNDMScheduler: numpy vs diffusers, with the Runge-Kutta warm-up (skip_prk_steps=False) and without."""

import itertools

import numpy as np
import pytest
import torch

import diffusers
import edge_sched.schedulers.pndm  # noqa: F401  registers PNDMScheduler
from edge_sched.schedulers.pndm import PNDMScheduler

from .harness import check_parity, initial_sample, model_fn

NAME = "PNDMScheduler"
SD = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")

GRID = [
    dict(SD, prediction_type=p, timestep_spacing=s, skip_prk_steps=skip)
    for p, s, skip in itertools.product(("epsilon", "v_prediction"), ("linspace", "leading", "trailing"), (True, False))
]
EXTRA = [
    dict(SD, skip_prk_steps=True, steps_offset=1),  # Stable Diffusion 1.x's scheduler config
    dict(SD, skip_prk_steps=False, steps_offset=1, set_alpha_to_one=True),
    dict(SD, skip_prk_steps=True, set_alpha_to_one=True, timestep_spacing="trailing"),
    dict(),  # diffusers' defaults: linear betas, PRK warm-up, leading
    dict(skip_prk_steps=True),
    dict(beta_schedule="squaredcos_cap_v2", skip_prk_steps=True),
    dict(beta_schedule="squaredcos_cap_v2"),
    dict(trained_betas=[0.0001 + 0.0002 * i for i in range(100)], num_train_timesteps=100),
]


def _ids(c):
    return ",".join(f"{k}={v}" for k, v in c.items())[:80] or "defaults"


def _steps(config):
    # the PRK warm-up spans the four highest timesteps: diffusers needs at least 4 steps there
    return (1, 2, 3, 10, 25, 50) if config.get("skip_prk_steps") else (4, 5, 10, 25, 50)


CASES = [(c, n) for c in GRID + EXTRA for n in _steps(c)]


@pytest.mark.parametrize("config, steps", CASES, ids=[f"{_ids(c)}-{n}" for c, n in CASES])
def test_grid(config, steps):
    check_parity(NAME, config, {"num_inference_steps": steps})


@pytest.mark.parametrize("steps", (1, 4, 10))
@pytest.mark.parametrize("skip", (True, False))
@pytest.mark.parametrize("spacing", ("linspace", "leading", "trailing"))
def test_timesteps_and_stages_like_diffusers(spacing, skip, steps):
    config = dict(timestep_spacing=spacing, skip_prk_steps=skip)
    ref, ours = diffusers.PNDMScheduler(**config), PNDMScheduler(**config)
    if not skip and steps < 4:
        return
    ref.set_timesteps(steps)
    ours.set_timesteps(steps)
    assert ours.timesteps.dtype == np.int64
    np.testing.assert_array_equal(ours.timesteps, ref.timesteps.numpy())
    np.testing.assert_array_equal(ours.prk_timesteps, ref.prk_timesteps)
    np.testing.assert_array_equal(ours.plms_timesteps, ref.plms_timesteps)


@pytest.mark.parametrize("steps", (1, 2, 3))
def test_prk_warm_up_needs_four_steps(steps):
    # diffusers fails inside numpy (a broadcast ValueError); ours says why
    with pytest.raises(ValueError):
        diffusers.PNDMScheduler(skip_prk_steps=False).set_timesteps(steps)
    with pytest.raises(ValueError, match="num_inference_steps >= 4"):
        PNDMScheduler(skip_prk_steps=False).set_timesteps(steps)


def test_plms_before_warm_up_is_an_error():
    ref, ours = diffusers.PNDMScheduler(), PNDMScheduler()
    ref.set_timesteps(10)
    ours.set_timesteps(10)
    x = initial_sample()
    with pytest.raises(ValueError):
        ref.step_plms(torch.from_numpy(x), ref.timesteps[0], torch.from_numpy(x))
    with pytest.raises(ValueError, match="warm-up"):
        ours.step_plms(x, ours.timesteps[0], x)


def test_set_timesteps_restarts_the_multistep_state():
    s = PNDMScheduler(**SD, skip_prk_steps=True)
    s.set_timesteps(10)
    x = initial_sample()
    for t in s.timesteps[:4]:
        x = s.step(model_fn(x, t), t, x).prev_sample
    s.set_timesteps(10)
    assert s.counter == 0 and s.ets == [] and s.cur_sample is None


def test_options_other_schedulers_have_are_refused():
    with pytest.raises(ValueError, match="prediction_type"):
        PNDMScheduler(prediction_type="sample")
    with pytest.raises(ValueError, match="beta_schedule"):
        PNDMScheduler(beta_schedule="sigmoid")
