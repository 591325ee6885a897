"""EulerDiscreteScheduler: numpy vs diffusers over its config grid."""

import itertools

import pytest

from edge_sched import AysSchedules

from .harness import check_parity

NAME = "EulerDiscreteScheduler"
SD = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
STEPS = (1, 2, 3, 10, 25, 50)

GRID = [
    dict(SD, prediction_type=p, timestep_spacing=s, **sig)
    for p, s, sig in itertools.product(
        ("epsilon", "v_prediction", "sample"),
        ("linspace", "leading", "trailing"),
        ({}, {"use_karras_sigmas": True}, {"use_exponential_sigmas": True}, {"use_beta_sigmas": True}),
    )
]
EXTRA = [
    dict(beta_schedule="linear"),
    dict(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction"),
    dict(SD, steps_offset=1, timestep_spacing="leading"),
    dict(SD, interpolation_type="log_linear"),
    dict(SD, interpolation_type="log_linear", use_karras_sigmas=True),
    dict(SD, final_sigmas_type="sigma_min"),
    dict(SD, use_karras_sigmas=True, final_sigmas_type="sigma_min", sigma_min=0.1, sigma_max=10.0),
    dict(SD, timestep_type="continuous", prediction_type="v_prediction"),
    dict(SD, rescale_betas_zero_snr=True, timestep_spacing="trailing", prediction_type="v_prediction"),
    dict(trained_betas=[0.0001 + 0.0002 * i for i in range(100)], num_train_timesteps=100),
]


@pytest.mark.parametrize("steps", STEPS)
@pytest.mark.parametrize("config", GRID + EXTRA, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items())[:80])
def test_grid(config, steps):
    check_parity(NAME, config, {"num_inference_steps": steps})


@pytest.mark.parametrize("churn", [0.5, 3.0])
def test_churn_noise(churn):
    # s_churn draws noise from the generator: same seed must give the same trajectory
    check_parity(NAME, SD, {"num_inference_steps": 20}, {"s_churn": churn, "s_tmin": 0.5, "s_tmax": 8.0}, seed=3)


@pytest.mark.parametrize("key", ["StableDiffusionTimesteps", "StableDiffusionXLTimesteps"])
def test_ays_timesteps(key):
    check_parity(NAME, SD, {"timesteps": AysSchedules[key]})


@pytest.mark.parametrize("key", ["StableDiffusionSigmas", "StableDiffusionXLSigmas"])
def test_ays_sigmas(key):
    check_parity(NAME, SD, {"sigmas": AysSchedules[key]})


def test_custom_timesteps_and_sigmas():
    check_parity(NAME, SD, {"timesteps": [901, 700, 500, 333, 100, 3]})
    check_parity(NAME, SD, {"sigmas": [12.0, 7.5, 3.0, 1.2, 0.4, 0.0]})
