"""EDMDPMSolverMultistepScheduler: numpy vs diffusers over its config grid."""

import itertools

import pytest
import torch

import diffusers
import edge_sched.schedulers.edm_dpmsolver_multistep  # noqa: F401  (registers EDMDPMSolverMultistepScheduler)
from edge_sched.schedulers import scheduler_class

from .harness import check_parity, initial_sample, model_fn

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


def test_sample_prediction_fails_at_the_step_like_diffusers():
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
