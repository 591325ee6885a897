"""DPMSolverMultistepInverseScheduler: numpy vs diffusers over its config grid."""

import itertools

import numpy as np
import pytest
import torch

import diffusers
import edge_sched.schedulers.dpmsolver_multistep_inverse  # noqa: F401  (registers the inverse scheduler)
from edge_sched.schedulers import scheduler_class

from .harness import RTOL, check_parity, initial_sample, model_fn
from .scheduler_contract import repeated_first_timestep_fails_like_diffusers

NAME = "DPMSolverMultistepInverseScheduler"
SD = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
STEPS = (1, 2, 3, 10, 25, 50)

pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),  # diffusers deprecates dpmsolver / sde-dpmsolver
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]


def _id(config):
    return ",".join(f"{k}={v}" for k, v in config.items() if k not in SD)[:90] or "sd"


RULES = [
    dict(SD, algorithm_type=a, solver_type=s, solver_order=o)
    for a, s, o in itertools.product(("dpmsolver++", "sde-dpmsolver++", "dpmsolver", "sde-dpmsolver"),
                                     ("midpoint", "heun"), (1, 2, 3))
    if not (a.startswith("sde-") and o == 3)  # diffusers' inverse has no third-order SDE step: tested apart
]
SCHEDULES = [
    dict(SD, prediction_type=p, timestep_spacing=s, **sig)
    for p, s, sig in itertools.product(
        ("epsilon", "v_prediction", "sample"),
        ("linspace", "leading", "trailing"),
        ({}, {"use_karras_sigmas": True}, {"use_exponential_sigmas": True}, {"use_beta_sigmas": True}),
    )
]
EXTRA = [
    dict(SD, lower_order_final=False),
    dict(SD, lower_order_final=False, solver_order=3),
    dict(SD, euler_at_final=True),
    dict(SD, steps_offset=1, timestep_spacing="leading"),
    dict(beta_schedule="linear"),
    dict(beta_schedule="squaredcos_cap_v2", lambda_min_clipped=-5.1),
    dict(beta_schedule="squaredcos_cap_v2", lambda_min_clipped=-5.1, timestep_spacing="trailing"),
    dict(SD, lambda_min_clipped=-3.0, timestep_spacing="leading"),
    dict(SD, thresholding=True, sample_max_value=1.5),
    dict(SD, thresholding=True, prediction_type="v_prediction", solver_order=3, dynamic_thresholding_ratio=0.9),
    dict(SD, thresholding=True, algorithm_type="dpmsolver"),
    dict(SD, thresholding=True, algorithm_type="sde-dpmsolver", prediction_type="sample"),
    dict(trained_betas=[0.0001 + 0.0002 * i for i in range(100)], num_train_timesteps=100),
    dict(use_flow_sigmas=True, prediction_type="flow_prediction"),
    dict(use_flow_sigmas=True, prediction_type="flow_prediction", flow_shift=3.0, solver_order=3),
    dict(use_flow_sigmas=True, prediction_type="v_prediction", flow_shift=3.0),
]


def _repeats_first_timestep(config, steps):
    """Exponential ramps start with several sigmas below the second training sigma: their
    fractional timesteps are distinct, but truncate to a repeated 0, and diffusers' loop then
    runs past the schedule (tested apart below)."""
    return config.get("use_exponential_sigmas") and steps >= 25


CASES = [(c, n) for c in RULES + SCHEDULES + EXTRA for n in STEPS if not _repeats_first_timestep(c, n)]


@pytest.mark.parametrize("config,steps", CASES, ids=[f"{_id(c)}-{n}" for c, n in CASES])
def test_grid(config, steps):
    check_parity(NAME, config, {"num_inference_steps": steps})


@pytest.mark.parametrize("seed", [0, 7])
def test_sde_noise_from_the_generator(seed):
    check_parity(NAME, dict(SD, algorithm_type="sde-dpmsolver++"), {"num_inference_steps": 20}, seed=seed)
    check_parity(NAME, dict(SD, algorithm_type="sde-dpmsolver"), {"num_inference_steps": 20}, seed=seed)


def test_repeated_first_timestep_fails_like_diffusers():
    repeated_first_timestep_fails_like_diffusers(NAME, dict(SD, use_exponential_sigmas=True), 25)


@pytest.mark.parametrize("algorithm_type", ["sde-dpmsolver++", "sde-dpmsolver"])
def test_sde_has_no_third_order(algorithm_type):
    # diffusers' inverse calls its third-order update without noise (AssertionError / UnboundLocalError)
    config = dict(SD, algorithm_type=algorithm_type, solver_order=3)
    ours = scheduler_class(NAME).from_config(config)
    ref = diffusers.DPMSolverMultistepInverseScheduler.from_config(config)
    ours.set_timesteps(10)
    ref.set_timesteps(10)
    x = initial_sample(0)
    with pytest.raises((AssertionError, UnboundLocalError)):
        for t in ref.timesteps[:3]:
            ref.step(torch.from_numpy(model_fn(x, t.numpy())), t, torch.from_numpy(x))
    with pytest.raises(NotImplementedError, match="third-order"):
        for t in ours.timesteps[:3]:
            ours.step(model_fn(x, t), t, x, generator=0)


def test_schedule_matches_diffusers():
    ref, ours = diffusers.DPMSolverMultistepInverseScheduler(), scheduler_class(NAME)()
    np.testing.assert_array_equal(ours.timesteps, ref.timesteps.numpy())
    for config in (SD, dict(SD, use_karras_sigmas=True), dict(SD, use_beta_sigmas=True),
                   dict(beta_schedule="squaredcos_cap_v2", lambda_min_clipped=-5.1, use_exponential_sigmas=True)):
        ref = diffusers.DPMSolverMultistepInverseScheduler.from_config(config)
        ours = scheduler_class(NAME).from_config(config)
        for n in (7, 50, 200):
            ref.set_timesteps(n)
            ours.set_timesteps(n)
            np.testing.assert_array_equal(ours.timesteps, ref.timesteps.numpy())
            np.testing.assert_allclose(ours.sigmas, ref.sigmas.numpy(), rtol=RTOL)
            assert ours.num_inference_steps == ref.num_inference_steps
            assert ours.noisiest_timestep == ref.noisiest_timestep


def test_bad_input():
    config = {"use_karras_sigmas": True, "use_beta_sigmas": True}
    with pytest.raises(Exception):
        diffusers.DPMSolverMultistepInverseScheduler.from_config(config)
    with pytest.raises(ValueError, match="Only one"):
        scheduler_class(NAME).from_config(config)
