"""EDMEulerScheduler: numpy vs diffusers over its config grid."""

import itertools
import json

import numpy as np
import pytest
import torch

import diffusers
import edge_sched.schedulers.edm_euler  # noqa: F401  (registers EDMEulerScheduler)
from edge_sched.schedulers import SchedulerNotReadyError, scheduler_class

from .harness import RTOL, initial_sample, max_step_error, model_fn, record, run_ours, run_reference, check_parity

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


def test_schedule_before_set_timesteps():
    for config in ({}, {"sigma_schedule": "exponential", "final_sigmas_type": "sigma_min"}):
        ref, ours = diffusers.EDMEulerScheduler(**config), scheduler_class(NAME)(**config)
        np.testing.assert_allclose(ours.sigmas, ref.sigmas.numpy(), rtol=RTOL)
        np.testing.assert_allclose(ours.timesteps, ref.timesteps.numpy(), rtol=RTOL, atol=RTOL)
        assert ours.init_noise_sigma == ref.init_noise_sigma


def test_add_noise_matches_diffusers():
    ref, ours = diffusers.EDMEulerScheduler(), scheduler_class(NAME)()
    ref.set_timesteps(25)
    ours.set_timesteps(25)
    x0, noise = initial_sample(4), initial_sample(5)
    t = ours.timesteps[[3, 17]]
    expected = ref.add_noise(torch.from_numpy(x0), torch.from_numpy(noise), ref.timesteps[[3, 17]]).numpy()
    np.testing.assert_allclose(ours.add_noise(x0, noise, t), expected, rtol=0, atol=RTOL * np.abs(expected).max())


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


def test_return_dict_false_and_given_x0():
    s = scheduler_class(NAME)()
    s.set_timesteps(5)
    x = initial_sample(0) * np.float32(s.init_noise_sigma)
    out = s.step(model_fn(x, s.timesteps[0]), s.timesteps[0], x, return_dict=False)
    assert isinstance(out, tuple) and len(out) == 2 and out[0].dtype == np.float32
    # a given pred_original_sample replaces the model's
    ref = diffusers.EDMEulerScheduler()
    ref.set_timesteps(5)
    x0 = initial_sample(9)
    y_ref = ref.step(torch.zeros(x.shape), ref.timesteps[0], torch.from_numpy(x),
                     pred_original_sample=torch.from_numpy(x0)).prev_sample.numpy()
    s.set_timesteps(5)
    y = s.step(np.zeros_like(x), s.timesteps[0], x, pred_original_sample=x0).prev_sample
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=RTOL * np.abs(y_ref).max())


def test_config_round_trip_through_diffusers(tmp_path):
    ours = scheduler_class(NAME)(sigma_schedule="exponential", sigma_max=14.6, final_sigmas_type="sigma_min")
    ours.save_pretrained(tmp_path)
    ref = diffusers.EDMEulerScheduler.from_pretrained(tmp_path)
    for key, value in ours.config.items():
        if not key.startswith("_"):
            assert ref.config[key] == value, key
    assert json.loads((tmp_path / "scheduler_config.json").read_text())["_class_name"] == NAME


def test_bad_input():
    for config in ({"sigma_schedule": "linear"}, {"final_sigmas_type": "max"}):
        with pytest.raises(ValueError):
            diffusers.EDMEulerScheduler(**config)
        with pytest.raises(ValueError, match=next(iter(config))):
            scheduler_class(NAME)(**config)
    # diffusers accepts "sample" at construction and fails at the first step; we refuse it up front
    ref = diffusers.EDMEulerScheduler(prediction_type="sample")
    ref.set_timesteps(3)
    x = initial_sample(0)
    with pytest.raises(ValueError):
        ref.step(torch.from_numpy(x), ref.timesteps[0], torch.from_numpy(x))
    with pytest.raises(ValueError, match="prediction_type"):
        scheduler_class(NAME)(prediction_type="sample")
    ours = scheduler_class(NAME)()
    ours.set_timesteps(3)
    with pytest.raises(ValueError, match="integer"):
        ours.step(x, 3, x)
    with pytest.raises(ValueError, match="num_inference_steps"):
        scheduler_class(NAME)().set_timesteps()


def test_step_before_set_timesteps():
    s = scheduler_class(NAME)()
    x = initial_sample(0)
    with pytest.raises(SchedulerNotReadyError, match="set_timesteps"):
        s.step(x, np.float32(1.0), x)
