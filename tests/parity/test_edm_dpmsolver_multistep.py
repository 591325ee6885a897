"""EDMDPMSolverMultistepScheduler: numpy vs diffusers over its config grid."""

import itertools
import json

import numpy as np
import pytest
import torch

import diffusers
import edge_sched.schedulers.edm_dpmsolver_multistep  # noqa: F401  (registers EDMDPMSolverMultistepScheduler)
from edge_sched.schedulers import SchedulerNotReadyError, scheduler_class

from .harness import RTOL, check_parity, initial_sample, model_fn

NAME = "EDMDPMSolverMultistepScheduler"
STEPS = (1, 2, 3, 10, 25, 50)


def _id(config):
    return ",".join(f"{k}={v}" for k, v in config.items())[:90] or "default"


# every update rule: algorithm x second-order solver x order (no third-order SDE rule in diffusers)
RULES = [
    dict(algorithm_type=a, solver_type=s, solver_order=o)
    for a, s, o in itertools.product(("dpmsolver++", "sde-dpmsolver++"), ("midpoint", "heun"), (1, 2, 3))
    if not (a == "sde-dpmsolver++" and o == 3)
]
SCHEDULES = [
    dict(prediction_type=p, sigma_schedule=s, final_sigmas_type=f)
    for p, s, f in itertools.product(("epsilon", "v_prediction"), ("karras", "exponential"), ("zero", "sigma_min"))
]
EXTRA = [
    dict(lower_order_final=False),
    dict(lower_order_final=False, solver_order=3),
    dict(euler_at_final=True, final_sigmas_type="sigma_min"),
    dict(final_sigmas_type="sigma_min", lower_order_final=False, algorithm_type="sde-dpmsolver++"),
    dict(thresholding=True, sample_max_value=1.5),
    dict(thresholding=True, prediction_type="v_prediction", solver_order=3, dynamic_thresholding_ratio=0.9),
    dict(sigma_min=0.03, sigma_max=14.6, sigma_data=1.0, rho=5.0, sigma_schedule="exponential"),
    dict(num_train_timesteps=100, rho=3.0),
]


@pytest.mark.parametrize("steps", STEPS)
@pytest.mark.parametrize("config", RULES + SCHEDULES + EXTRA, ids=_id)
def test_grid(config, steps):
    check_parity(NAME, config, {"num_inference_steps": steps})


def test_sde_seeds():
    for seed in (1, 7):
        check_parity(NAME, {"algorithm_type": "sde-dpmsolver++"}, {"num_inference_steps": 20}, seed=seed)


def test_schedule_before_set_timesteps():
    for config in ({}, {"sigma_schedule": "exponential"}):
        ref, ours = diffusers.EDMDPMSolverMultistepScheduler(**config), scheduler_class(NAME)(**config)
        np.testing.assert_allclose(ours.sigmas, ref.sigmas.numpy(), rtol=RTOL)
        np.testing.assert_allclose(ours.timesteps, ref.timesteps.numpy(), rtol=RTOL, atol=RTOL)
        assert ours.init_noise_sigma == ref.init_noise_sigma


def test_add_noise_matches_diffusers():
    ref, ours = diffusers.EDMDPMSolverMultistepScheduler(), scheduler_class(NAME)()
    ref.set_timesteps(25)
    ours.set_timesteps(25)
    x0, noise = initial_sample(4), initial_sample(5)
    expected = ref.add_noise(torch.from_numpy(x0), torch.from_numpy(noise), ref.timesteps[[3, 17]]).numpy()
    got = ours.add_noise(x0, noise, ours.timesteps[[3, 17]])
    np.testing.assert_allclose(got, expected, rtol=0, atol=RTOL * np.abs(expected).max())


def test_return_dict_false_and_no_x0():
    s = scheduler_class(NAME)()
    s.set_timesteps(5)
    x = initial_sample(0)
    out = s.step(model_fn(x, s.timesteps[0]), s.timesteps[0], x, return_dict=False)
    assert isinstance(out, tuple) and len(out) == 1 and out[0].dtype == np.float32
    assert s.step(model_fn(x, s.timesteps[1]), s.timesteps[1], x).pred_original_sample is None


def test_legacy_solver_names_from_a_sibling_config():
    for extra in ({"algorithm_type": "deis", "solver_type": "logrho", "final_sigmas_type": "sigma_min"},
                  {"solver_type": "bh2"}):
        ref = diffusers.EDMDPMSolverMultistepScheduler.from_config(extra)
        ours = scheduler_class(NAME).from_config(extra)
        assert ours.config.algorithm_type == ref.config.algorithm_type
        assert ours.config.solver_type == ref.config.solver_type


def test_config_round_trip_through_diffusers(tmp_path):
    ours = scheduler_class(NAME)(algorithm_type="sde-dpmsolver++", solver_order=3, sigma_schedule="exponential")
    ours.save_pretrained(tmp_path)
    ref = diffusers.EDMDPMSolverMultistepScheduler.from_pretrained(tmp_path)
    for key, value in ours.config.items():
        if not key.startswith("_"):
            assert ref.config[key] == value, key
    assert json.loads((tmp_path / "scheduler_config.json").read_text())["_class_name"] == NAME


def test_bad_input():
    for config, match in (({"algorithm_type": "dpmsolver"}, "algorithm_type"), ({"solver_type": "rk4"}, "solver_type"),
                          ({"sigma_schedule": "beta"}, "sigma_schedule")):
        with pytest.raises(Exception):
            diffusers.EDMDPMSolverMultistepScheduler(**config)
        with pytest.raises(ValueError, match=match):
            scheduler_class(NAME)(**config)
    # "sample" is a valid config value, but the EDM preconditioning has no such output: both fail at step
    ref, ours = (cls(prediction_type="sample") for cls in (diffusers.EDMDPMSolverMultistepScheduler,
                                                          scheduler_class(NAME)))
    ref.set_timesteps(3)
    ours.set_timesteps(3)
    x = initial_sample(0)
    with pytest.raises(ValueError):
        ref.step(torch.from_numpy(x), ref.timesteps[0], torch.from_numpy(x))
    with pytest.raises(ValueError, match="prediction_type"):
        ours.step(x, ours.timesteps[0], x)
    with pytest.raises(TypeError, match="num_inference_steps"):
        scheduler_class(NAME)().set_timesteps()


def test_step_before_set_timesteps():
    s = scheduler_class(NAME)()
    x = initial_sample(0)
    with pytest.raises(SchedulerNotReadyError, match="set_timesteps"):
        s.step(x, np.float32(1.0), x)


def test_sde_has_no_third_order():
    # diffusers' EDM third-order update has no SDE branch (UnboundLocalError); we say why
    config = {"algorithm_type": "sde-dpmsolver++", "solver_order": 3}
    ours = scheduler_class(NAME)(**config)
    ours.set_timesteps(10)
    x = initial_sample(0)
    ours.step(model_fn(x, ours.timesteps[0]), ours.timesteps[0], x, generator=0)
    ours.step(model_fn(x, ours.timesteps[1]), ours.timesteps[1], x, generator=0)
    with pytest.raises(NotImplementedError, match="third-order"):
        ours.step(model_fn(x, ours.timesteps[2]), ours.timesteps[2], x, generator=0)
    ref = diffusers.EDMDPMSolverMultistepScheduler(**config)
    ref.set_timesteps(10)
    with pytest.raises(UnboundLocalError):
        for t in ref.timesteps[:3]:
            ref.step(torch.from_numpy(model_fn(x, t.numpy())), t, torch.from_numpy(x))
