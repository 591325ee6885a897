"""DDIMScheduler: numpy vs diffusers over its config grid, eta > 0 noise, variance_noise."""

import itertools

import numpy as np
import pytest
import torch

import diffusers
import edge_sched.schedulers.ddim  # noqa: F401  registers DDIMScheduler
from edge_sched.random import TorchGenerator
from edge_sched.schedulers.ddim import DDIMScheduler

from .harness import check_parity, initial_sample, model_fn

NAME = "DDIMScheduler"
SD = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
STEPS = (1, 2, 3, 10, 25, 50)

GRID = [
    dict(SD, prediction_type=p, timestep_spacing=s, set_alpha_to_one=one, clip_sample=False)
    for p, s, one in itertools.product(
        ("epsilon", "v_prediction", "sample"), ("linspace", "leading", "trailing"), (True, False)
    )
]
EXTRA = [
    dict(SD),  # clip_sample=True (diffusers' default)
    dict(SD, clip_sample=True, clip_sample_range=0.5, prediction_type="v_prediction"),
    dict(SD, thresholding=True, dynamic_thresholding_ratio=0.9, sample_max_value=2.5),
    dict(SD, thresholding=True, prediction_type="v_prediction", timestep_spacing="trailing"),
    dict(SD, steps_offset=1, set_alpha_to_one=False, clip_sample=False),  # Stable Diffusion 1.x
    dict(SD, rescale_betas_zero_snr=True, timestep_spacing="trailing", prediction_type="v_prediction",
         clip_sample=False),
    dict(beta_schedule="squaredcos_cap_v2", clip_sample=False),
    dict(trained_betas=[0.0001 + 0.0002 * i for i in range(100)], num_train_timesteps=100),
    dict(),  # diffusers' defaults: linear betas, clip_sample=True, leading
    dict(clip_sample=False, timestep_spacing="trailing"),
]


def _ids(c):
    return ",".join(f"{k}={v}" for k, v in c.items())[:80] or "defaults"


@pytest.mark.parametrize("steps", STEPS)
@pytest.mark.parametrize("config", GRID + EXTRA, ids=_ids)
def test_grid(config, steps):
    check_parity(NAME, config, {"num_inference_steps": steps})


@pytest.mark.parametrize("steps", (1, 10, 50))
@pytest.mark.parametrize(
    "config, step_kwargs",
    [
        (dict(SD, clip_sample=False), {"eta": 1.0}),
        (dict(SD, clip_sample=False, timestep_spacing="trailing"), {"eta": 0.5}),
        (dict(SD), {"eta": 0.7, "use_clipped_model_output": True}),
        (dict(SD, thresholding=True, prediction_type="v_prediction"), {"eta": 1.0, "use_clipped_model_output": True}),
        (dict(SD, prediction_type="sample", clip_sample_range=0.5), {"eta": 0.3, "use_clipped_model_output": True}),
    ],
    ids=lambda v: _ids(v) if isinstance(v, dict) else None,
)
def test_eta_noise_from_the_generator(config, step_kwargs, steps):
    # eta > 0 draws noise from the generator: the same seed must give the same trajectory
    check_parity(NAME, config, {"num_inference_steps": steps}, step_kwargs, seed=4)


def test_use_clipped_model_output_without_noise():
    check_parity(NAME, SD, {"num_inference_steps": 10}, {"use_clipped_model_output": True})


def test_generator_and_variance_noise_together_is_an_error():
    ref, ours = diffusers.DDIMScheduler(), DDIMScheduler()
    ref.set_timesteps(10)
    ours.set_timesteps(10)
    x = initial_sample()
    t = ours.timesteps[0]
    with pytest.raises(ValueError):
        ref.step(torch.from_numpy(model_fn(x, t)), torch.tensor(t), torch.from_numpy(x), eta=1.0,
                 generator=torch.Generator().manual_seed(0), variance_noise=torch.zeros(x.shape))
    with pytest.raises(ValueError, match="generator.*variance_noise"):
        ours.step(model_fn(x, t), t, x, eta=1.0, generator=TorchGenerator(0), variance_noise=np.zeros_like(x))


def test_sigmoid_betas_are_ddpms_only():
    with pytest.raises(NotImplementedError):
        diffusers.DDIMScheduler(beta_schedule="sigmoid")
    with pytest.raises(ValueError, match="beta_schedule 'sigmoid'"):
        DDIMScheduler(beta_schedule="sigmoid")
