"""HeunDiscreteScheduler: numpy vs diffusers over its config grid (two model calls per step)."""

import itertools

import numpy as np
import pytest

import edge_sched.schedulers.heun  # noqa: F401  (registers HeunDiscreteScheduler)
from edge_sched import AysSchedules
from edge_sched.schedulers import SchedulerNotReadyError
from edge_sched.schedulers.heun import HeunDiscreteScheduler

from .harness import check_parity

NAME = "HeunDiscreteScheduler"
SD = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
STEPS = (1, 2, 3, 10, 25, 50)
SPACINGS = ("linspace", "leading", "trailing")

# beta sigmas are slow to plan on both sides (diffusers plans 1000 of them in __init__):
# they get the spacings with epsilon; the other ramps get the full prediction x spacing grid
GRID = [
    dict(SD, prediction_type=p, timestep_spacing=s, **sig)
    for p, s, sig in itertools.product(
        ("epsilon", "v_prediction", "sample"),
        SPACINGS,
        ({}, {"use_karras_sigmas": True}, {"use_exponential_sigmas": True}),
    )
] + [dict(SD, timestep_spacing=s, use_beta_sigmas=True) for s in SPACINGS]
EXTRA = [
    dict(),  # Heun's own defaults (linear betas 0.00085..0.012)
    dict(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction"),
    dict(beta_schedule="exp"),
    dict(SD, steps_offset=1, timestep_spacing="leading"),
    dict(SD, clip_sample=True),
    dict(SD, clip_sample=True, clip_sample_range=0.5, prediction_type="sample"),
    dict(SD, clip_sample=True, clip_sample_range=2.0, prediction_type="v_prediction", use_karras_sigmas=True),
    dict(trained_betas=[0.0001 + 0.0002 * i for i in range(100)], num_train_timesteps=100),
]


def _id(config):
    return ",".join(f"{k}={v}" for k, v in config.items() if k not in SD or config[k] != SD[k])[:80] or "sd"


@pytest.mark.parametrize("steps", STEPS)
@pytest.mark.parametrize("config", GRID + EXTRA, ids=_id)
def test_grid(config, steps):
    check_parity(NAME, config, {"num_inference_steps": steps})


@pytest.mark.parametrize("key", ["StableDiffusionTimesteps", "StableDiffusionXLTimesteps"])
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_ays_timesteps(key, prediction_type):
    check_parity(NAME, dict(SD, prediction_type=prediction_type), {"timesteps": AysSchedules[key]})


def test_custom_timesteps_and_train_range():
    check_parity(NAME, SD, {"timesteps": [901, 700, 500, 333, 100, 3]})
    check_parity(NAME, SD, {"timesteps": [999.0, 640.5, 100.25]})
    # set_timesteps' num_train_timesteps narrows the range the spacing covers
    for spacing in SPACINGS:
        check_parity(NAME, dict(SD, timestep_spacing=spacing), {"num_inference_steps": 10, "num_train_timesteps": 500})


def test_bad_input():
    with pytest.raises(ValueError, match="Only one of"):
        HeunDiscreteScheduler(use_karras_sigmas=True, use_exponential_sigmas=True)
    with pytest.raises(ValueError, match="use_karras_sigmas"):
        HeunDiscreteScheduler(use_karras_sigmas=True).set_timesteps(timesteps=[900, 500])
    with pytest.raises(SchedulerNotReadyError):
        x = np.ones((1, 4, 8, 8), np.float32)
        object.__new__(HeunDiscreteScheduler).step(x, 1.0, x)
