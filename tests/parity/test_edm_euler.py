"""EDMEulerScheduler: numpy vs diffusers over its config grid."""

import itertools

import numpy as np
import pytest
import torch

import diffusers
import edge_sched.schedulers.edm_euler  # noqa: F401  (registers EDMEulerScheduler)
from edge_sched.schedulers import scheduler_class

from .harness import RTOL, initial_sample, max_step_error, record, run_ours, run_reference, check_parity

NAME = "EDMEulerScheduler"
STEPS = (1, 2, 3, 10, 25, 50)

GRID = [
    dict(prediction_type=p, sigma_schedule=s, final_sigmas_type=f)
    for p, s, f in itertools.product(("epsilon", "v_prediction"), ("karras", "exponential"), ("zero", "sigma_min"))
]
EXTRA = [
    dict(sigma_min=0.03, sigma_max=14.6, sigma_data=1.0, rho=5.0),  # CosXL-like ranges
    dict(sigma_schedule="exponential", sigma_min=0.002, sigma_max=120.0, prediction_type="v_prediction"),
    dict(num_train_timesteps=100, rho=3.0),
]


def _id(config):
    return ",".join(f"{k}={v}" for k, v in config.items())[:80] or "default"


@pytest.mark.parametrize("steps", STEPS)
@pytest.mark.parametrize("config", GRID + EXTRA, ids=_id)
def test_grid(config, steps):
    check_parity(NAME, config, {"num_inference_steps": steps})


@pytest.mark.parametrize("churn", [0.5, 3.0])
def test_churn_noise(churn):
    # s_churn draws noise from the generator: same seed must give the same trajectory
    check_parity(NAME, {}, {"num_inference_steps": 20}, {"s_churn": churn, "s_tmin": 0.5, "s_tmax": 30.0}, seed=3)
    check_parity(NAME, {"prediction_type": "v_prediction"}, {"num_inference_steps": 12},
                 {"s_churn": churn, "s_noise": 1.003}, seed=5)


@pytest.mark.parametrize("config", [{}, {"sigma_schedule": "exponential", "final_sigmas_type": "sigma_min"}], ids=_id)
def test_custom_sigmas(config):
    # diffusers takes custom sigmas as ramp positions (a tensor only) and maps them through the schedule
    ramp = [0.0, 0.1, 0.25, 0.5, 0.7, 0.9, 1.0]
    ref = run_reference(NAME, config, {"sigmas": torch.tensor(ramp, dtype=torch.float64)})
    ours = run_ours(NAME, config, {"sigmas": ramp})
    np.testing.assert_allclose(ours.sigmas, ref.sigmas, rtol=RTOL, atol=RTOL)
    np.testing.assert_allclose(ours.timesteps, ref.timesteps, rtol=RTOL, atol=RTOL)
    err = max_step_error(ref, ours)
    assert err <= RTOL, err
    record(NAME, err)


def test_preconditioning_helpers_match_diffusers():
    ref, ours = diffusers.EDMEulerScheduler(prediction_type="v_prediction"), scheduler_class(NAME)(
        prediction_type="v_prediction")
    x, f = initial_sample(1), initial_sample(2)
    for sigma in (0.01, 1.3, 79.0):
        s = torch.tensor(sigma, dtype=torch.float32)
        np.testing.assert_allclose(ours.precondition_inputs(x, sigma), ref.precondition_inputs(torch.from_numpy(x), s),
                                   rtol=RTOL)
        np.testing.assert_allclose(ours.precondition_outputs(x, f, sigma),
                                   ref.precondition_outputs(torch.from_numpy(x), torch.from_numpy(f), s),
                                   rtol=0, atol=RTOL * max(1, sigma))
        np.testing.assert_allclose(ours.precondition_noise(sigma), ref.precondition_noise(sigma).numpy(), rtol=RTOL)


def test_given_pred_original_sample_replaces_the_models():
    s = scheduler_class(NAME)()
    x = initial_sample(0) * np.float32(s.init_noise_sigma)
    ref = diffusers.EDMEulerScheduler()
    ref.set_timesteps(5)
    x0 = initial_sample(9)
    y_ref = ref.step(torch.zeros(x.shape), ref.timesteps[0], torch.from_numpy(x),
                     pred_original_sample=torch.from_numpy(x0)).prev_sample.numpy()
    s.set_timesteps(5)
    y = s.step(np.zeros_like(x), s.timesteps[0], x, pred_original_sample=x0).prev_sample
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=RTOL * np.abs(y_ref).max())


def test_sample_prediction_is_refused_up_front():
    # diffusers accepts "sample" at construction and fails at the first step; we refuse it up front
    ref = diffusers.EDMEulerScheduler(prediction_type="sample")
    ref.set_timesteps(3)
    x = initial_sample(0)
    with pytest.raises(ValueError):
        ref.step(torch.from_numpy(x), ref.timesteps[0], torch.from_numpy(x))
    with pytest.raises(ValueError, match="prediction_type"):
        scheduler_class(NAME)(prediction_type="sample")
