"""EulerAncestralDiscreteScheduler: numpy vs diffusers, including its per-step noise."""

import itertools

import numpy as np
import pytest
import torch

import diffusers
import edge_sched.schedulers.euler_ancestral  # noqa: F401  (registers EulerAncestralDiscreteScheduler)
from edge_sched.random import TorchGenerator
from edge_sched.schedulers.euler_ancestral import EulerAncestralDiscreteScheduler

from .harness import RTOL, check_parity, initial_sample, model_fn

NAME = "EulerAncestralDiscreteScheduler"
SD = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
STEPS = (1, 2, 3, 10, 25, 50)
SPACINGS = ("linspace", "leading", "trailing")

# diffusers' EulerAncestral has no sigma ramps and no custom timesteps/sigmas; "sample"
# prediction raises (test_bad_input)
GRID = [
    dict(SD, prediction_type=p, timestep_spacing=s, **snr)
    for p, s, snr in itertools.product(
        ("epsilon", "v_prediction"), SPACINGS, ({}, {"rescale_betas_zero_snr": True})
    )
]
EXTRA = [
    dict(beta_schedule="linear"),
    dict(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction"),
    dict(SD, steps_offset=1, timestep_spacing="leading"),
    dict(trained_betas=[0.0001 + 0.0002 * i for i in range(100)], num_train_timesteps=100),
]


def _id(config):
    return ",".join(f"{k}={v}" for k, v in config.items() if k not in SD or config[k] != SD[k])[:80] or "sd"


@pytest.mark.parametrize("steps", STEPS)
@pytest.mark.parametrize("config", GRID + EXTRA, ids=_id)
def test_grid(config, steps):
    check_parity(NAME, config, {"num_inference_steps": steps})


@pytest.mark.parametrize("seed", [1, 7, 12345])
def test_same_seed_same_trajectory(seed):
    # a fresh draw every step, including the last (where sigma_up is 0): the generator
    # must advance exactly as torch's does for later steps to match
    check_parity(NAME, SD, {"num_inference_steps": 20}, seed=seed)
    check_parity(NAME, dict(SD, rescale_betas_zero_snr=True, timestep_spacing="trailing"),
                 {"num_inference_steps": 20}, seed=seed)


def test_generator_per_batch_item():
    ours, ref = EulerAncestralDiscreteScheduler(**SD), diffusers.EulerAncestralDiscreteScheduler(**SD)
    ours.set_timesteps(8)
    ref.set_timesteps(8)
    seeds = [3, 4]
    gens = [TorchGenerator(s) for s in seeds]
    ref_gens = [torch.Generator("cpu").manual_seed(s) for s in seeds]
    x = initial_sample(5) * np.float32(ours.init_noise_sigma)
    xr = torch.from_numpy(initial_sample(5)) * ref.init_noise_sigma
    for t, tr in zip(ours.timesteps, ref.timesteps):
        x = ours.step(model_fn(ours.scale_model_input(x, t), t), t, x, generator=gens).prev_sample
        out = torch.from_numpy(model_fn(ref.scale_model_input(xr, tr).numpy(), tr.numpy()))
        xr = ref.step(out, tr, xr, generator=ref_gens).prev_sample
        assert np.abs(x - xr.numpy()).max() <= RTOL * max(1.0, float(xr.abs().max()))


def test_sample_prediction_is_not_implemented_like_diffusers():
    # like diffusers, "sample" prediction is accepted in the config but not implemented
    x = np.ones((1, 4, 8, 8), np.float32)
    t = EulerAncestralDiscreteScheduler(prediction_type="sample")
    t.set_timesteps(4)
    with pytest.raises(NotImplementedError, match="sample"):
        t.step(x, t.timesteps[0], x)
